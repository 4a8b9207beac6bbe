/**
 * `POST /api/v1/files` (multipart, part `file`) with upload progress. fetch cannot report
 * upload progress, so this one request goes through XMLHttpRequest; it follows the client's
 * rules all the same: bearer token from memory, one refresh + one retry on 401, the
 * envelope unwrapped, failures as `ApiError` (413/415 carry the server's `msg`).
 */
import { i18n } from '@/i18n'
import { formatSize, maxUploadBytes } from '@/lib/files'
import { API_PREFIX, ApiError, authHeaders, errorFromResponse, getAccessToken, refreshAccessToken } from './client'
import type { FileInfo } from './types'

export interface UploadOptions {
  /** Called with 0…1 as bytes go out. */
  onProgress?: (fraction: number) => void
  signal?: AbortSignal
  /** Client-side limit (default: the server's default, 10 MiB). */
  maxBytes?: number
}

/** The subset of XMLHttpRequest used here (tests substitute a fake). */
export interface XhrLike {
  open(method: string, url: string): void
  setRequestHeader(name: string, value: string): void
  getResponseHeader(name: string): string | null
  send(body: FormData): void
  abort(): void
  status: number
  responseText: string
  upload: { onprogress: ((e: { lengthComputable: boolean; loaded: number; total: number }) => void) | null }
  onload: (() => void) | null
  onerror: (() => void) | null
  onabort: (() => void) | null
}

let makeXhr: () => XhrLike = () => new XMLHttpRequest() as unknown as XhrLike

export function setXhrFactory(f: () => XhrLike): void {
  makeXhr = f
}

/** A sentence when the file must not be sent at all (checked before uploading), else null. */
export function checkUpload(file: { name: string; size: number }, maxBytes = maxUploadBytes()): string | null {
  if (file.size > maxBytes) {
    return i18n.global.t('files.tooLarge', { name: file.name, size: formatSize(file.size), limit: formatSize(maxBytes) })
  }
  return null
}

interface RawAnswer {
  status: number
  text: string
  retryAfter: string | null
}

function sendOnce(file: File, opts: UploadOptions): Promise<RawAnswer> {
  return new Promise((resolve, reject) => {
    const xhr = makeXhr()
    const abort = () => xhr.abort()
    xhr.open('POST', `${API_PREFIX}/files`)
    xhr.setRequestHeader('Accept', 'application/json')
    for (const [k, v] of Object.entries(authHeaders())) xhr.setRequestHeader(k, v)
    xhr.upload.onprogress = (e) => {
      if (e.lengthComputable && e.total > 0) opts.onProgress?.(Math.min(1, e.loaded / e.total))
    }
    xhr.onload = () => {
      opts.signal?.removeEventListener('abort', abort)
      resolve({ status: xhr.status, text: xhr.responseText, retryAfter: xhr.getResponseHeader('Retry-After') })
    }
    xhr.onerror = () => {
      opts.signal?.removeEventListener('abort', abort)
      reject(new ApiError(0, 0, i18n.global.t('errors.network'), null))
    }
    xhr.onabort = () => {
      opts.signal?.removeEventListener('abort', abort)
      reject(new DOMException('Upload aborted', 'AbortError'))
    }
    if (opts.signal?.aborted) {
      reject(new DOMException('Upload aborted', 'AbortError'))
      return
    }
    opts.signal?.addEventListener('abort', abort, { once: true })
    const form = new FormData()
    form.append('file', file, file.name)
    xhr.send(form)
  })
}

/** Uploads one file; resolves with its `FileInfo`. Throws `ApiError` (or an AbortError). */
export async function uploadFile(file: File, opts: UploadOptions = {}): Promise<FileInfo> {
  const refused = checkUpload(file, opts.maxBytes)
  if (refused) throw new ApiError(413, 413, refused, null)
  const sentWith = getAccessToken()
  let answer = await sendOnce(file, opts)
  if (answer.status === 401 && (await refreshAccessToken(sentWith))) {
    opts.onProgress?.(0)
    answer = await sendOnce(file, opts)
  }
  const status = answer.status
  if (status < 200 || status > 599) throw new ApiError(0, 0, i18n.global.t('errors.network'), null)
  if (status >= 300) {
    const headers: Record<string, string> = { 'Content-Type': 'application/json' }
    if (answer.retryAfter !== null) headers['Retry-After'] = answer.retryAfter
    throw await errorFromResponse(new Response(answer.text || null, { status, headers }))
  }
  let env: { code?: unknown; msg?: unknown; data?: unknown }
  try {
    env = JSON.parse(answer.text) as typeof env
  } catch {
    throw new ApiError(status, status, i18n.global.t('errors.unreadable'), null)
  }
  if (typeof env.code === 'number' && env.code !== 0) {
    throw new ApiError(status, env.code, typeof env.msg === 'string' ? env.msg : i18n.global.t('errors.generic'), env.data ?? null)
  }
  opts.onProgress?.(1)
  return env.data as FileInfo
}
