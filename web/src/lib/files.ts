/** Helpers for files shown in the UI: sizes, icons, and which download URLs we follow. */
import type { FileInfo } from '@/api/types'

/** The server's default upload limit (docs/api.md: 10 MiB), until `/auth/status` tells the real one. */
export const DEFAULT_MAX_UPLOAD_BYTES = 10 * 1024 * 1024
let maxUpload = DEFAULT_MAX_UPLOAD_BYTES

/** The largest upload the server accepts (from `/auth/status`'s `max_upload_bytes`). */
export function maxUploadBytes(): number {
  return maxUpload
}
export function setMaxUploadBytes(bytes: number): void {
  if (Number.isFinite(bytes) && bytes > 0) maxUpload = bytes
}

/** 1536 → "1.5 KB" (binary units, one decimal below 10). */
export function formatSize(bytes: number): string {
  if (!Number.isFinite(bytes) || bytes < 0) return '?'
  if (bytes < 1024) return `${bytes} B`
  const units = ['KB', 'MB', 'GB', 'TB']
  let v = bytes / 1024
  let i = 0
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024
    i++
  }
  return `${v < 10 ? v.toFixed(1) : Math.round(v)} ${units[i]}`
}

/**
 * A download URL we are willing to put in `href`/`src`: absolute http(s), or a path on this
 * origin (`/…`, not the protocol-relative `//…`). Anything else (javascript:, data:, blob:,
 * relative paths, garbage) → undefined.
 */
export function safeFileUrl(url: unknown, origin: string = globalThis.location?.origin ?? 'http://localhost'): string | undefined {
  if (typeof url !== 'string' || !url) return undefined
  const trimmed = url.trim()
  if (trimmed !== url || /[\u0000-\u001f\u007f\\]/.test(url)) return undefined
  if (url.startsWith('/') && !url.startsWith('//')) {
    try {
      return new URL(url, origin).origin === new URL(origin).origin ? url : undefined
    } catch {
      return undefined
    }
  }
  try {
    const u = new URL(url)
    return u.protocol === 'http:' || u.protocol === 'https:' ? u.href : undefined
  } catch {
    return undefined
  }
}

/** True when a signed URL's `expires` (unix seconds) has passed (or is about to). */
export function signedUrlExpired(url: string, nowMs: number = Date.now()): boolean {
  try {
    const exp = Number(new URL(url, 'http://x').searchParams.get('expires'))
    return Number.isFinite(exp) && exp > 0 && exp * 1000 < nowMs + 5000
  } catch {
    return false
  }
}

export type FileKind = 'image' | 'pdf' | 'text' | 'code' | 'archive' | 'audio' | 'video' | 'sheet' | 'other'

const CODE_EXT = /\.(js|ts|py|rs|go|java|c|h|cpp|rb|sh|json|ya?ml|toml|html|css|sql)$/i

export function fileKind(contentType: string, filename = ''): FileKind {
  const ct = contentType.toLowerCase()
  if (ct.startsWith('image/')) return 'image'
  if (ct === 'application/pdf') return 'pdf'
  if (ct.startsWith('audio/')) return 'audio'
  if (ct.startsWith('video/')) return 'video'
  if (/zip|tar|gzip|x-7z|x-rar|x-bzip|x-xz/.test(ct)) return 'archive'
  if (/spreadsheet|excel|csv/.test(ct) || /\.(csv|xlsx?|ods)$/i.test(filename)) return 'sheet'
  if (CODE_EXT.test(filename) || /json|javascript|x-python|x-sh|xml|yaml|toml/.test(ct)) return 'code'
  if (ct.startsWith('text/')) return 'text'
  return 'other'
}

/** `AppIcon` names per kind (SVG, so they look the same without an emoji font). */
export const FILE_ICONS: Record<FileKind, string> = {
  image: 'image',
  pdf: 'file',
  text: 'file',
  code: 'code',
  archive: 'archive',
  audio: 'music',
  video: 'film',
  sheet: 'table',
  other: 'paperclip',
}

/** Raster images we show as thumbnails (never SVG: it may carry scripts). */
export function isThumbnailable(contentType: string): boolean {
  return /^image\/(png|jpe?g|gif|webp|avif|bmp)$/i.test(contentType)
}

/** Coerces one untrusted `FileInfo` from an event (null when it has no id). */
export function toFileInfo(x: unknown): FileInfo | null {
  if (!x || typeof x !== 'object') return null
  const o = x as Record<string, unknown>
  const s = (v: unknown) => (typeof v === 'string' ? v : '')
  if (!s(o.file_id)) return null
  const size = typeof o.size === 'number' && Number.isFinite(o.size) ? o.size : Number(o.size) || 0
  return {
    file_id: s(o.file_id),
    filename: s(o.filename) || s(o.file_id),
    content_type: s(o.content_type) || 'application/octet-stream',
    size,
    upload_date: s(o.upload_date),
    metadata: o.metadata && typeof o.metadata === 'object' ? (o.metadata as FileInfo['metadata']) : {},
    file_url: typeof o.file_url === 'string' ? o.file_url : null,
  }
}

/** The valid entries of an untrusted attachments list. */
export function toFileInfos(list: unknown): FileInfo[] {
  return Array.isArray(list) ? list.map(toFileInfo).filter((f): f is FileInfo => f !== null) : []
}
