/**
 * Files the user is attaching to the next message: checked against the limit before
 * uploading, uploaded at once with progress, removable (an uploaded file that is removed
 * again is deleted on the server), then sent as `attachments: [{file_id, filename}]`.
 */
import { computed, reactive } from 'vue'
import { call } from '@/api/client'
import type { Attachment, FileInfo } from '@/api/types'
import { checkUpload, uploadFile } from '@/api/upload'
import { describeError } from '@/stores/toast'
import { uuid } from './uuid'

/** What the message box sends. */
export interface Draft {
  message: string
  attachments: Attachment[]
}

export interface PendingFile {
  key: string
  name: string
  size: number
  type: string
  /** 0…1 */
  progress: number
  status: 'uploading' | 'done'
  info: FileInfo | null
  abort: AbortController
}

export interface AttachmentsOptions {
  /** Every refusal and failure goes here (shown as a toast by the caller). */
  onError: (message: string) => void
  maxBytes?: number
}

export function useAttachments(opts: AttachmentsOptions) {
  const files = reactive<PendingFile[]>([])
  const uploading = computed(() => files.some((f) => f.status === 'uploading'))
  const ready = computed<Attachment[]>(() =>
    files.filter((f) => f.status === 'done' && f.info).map((f) => ({ file_id: f.info!.file_id, filename: f.info!.filename })),
  )

  function drop(key: string): void {
    const i = files.findIndex((f) => f.key === key)
    if (i >= 0) files.splice(i, 1)
  }

  async function uploadOne(file: File): Promise<void> {
    const refused = checkUpload(file, opts.maxBytes)
    if (refused) {
      opts.onError(refused)
      return
    }
    const live: PendingFile = reactive({
      key: uuid(),
      name: file.name,
      size: file.size,
      type: file.type,
      progress: 0,
      status: 'uploading',
      info: null,
      abort: new AbortController(),
    })
    files.push(live)
    try {
      const info = await uploadFile(file, {
        signal: live.abort.signal,
        maxBytes: opts.maxBytes,
        onProgress: (p) => (live.progress = p),
      })
      if (live.abort.signal.aborted) return
      live.info = info
      live.status = 'done'
      live.progress = 1
    } catch (e) {
      drop(live.key)
      if (e instanceof DOMException && e.name === 'AbortError') return
      opts.onError(`${file.name}: ${describeError(e)}`)
    }
  }

  /** Adds and uploads files (from the picker, a drop or a paste). */
  function add(list: FileList | File[] | null | undefined): Promise<void> {
    if (!list) return Promise.resolve()
    return Promise.all(Array.from(list).map(uploadOne)).then(() => undefined)
  }

  /** Removes a chip: aborts its upload, or deletes the uploaded file. */
  async function remove(key: string): Promise<void> {
    const f = files.find((x) => x.key === key)
    if (!f) return
    drop(key)
    if (f.status === 'uploading') {
      f.abort.abort()
      return
    }
    if (f.info) {
      try {
        await call('delete', '/api/v1/files/{id}', { path: { id: f.info.file_id } })
      } catch (e) {
        opts.onError(`${f.name}: ${describeError(e)}`)
      }
    }
  }

  /** Puts already uploaded files back (a message the server refused). */
  function restore(list: Attachment[]): void {
    for (const a of list) {
      const name = a.filename || a.file_id
      if (files.some((f) => f.info?.file_id === a.file_id)) continue
      files.push({
        key: uuid(),
        name,
        size: 0,
        type: '',
        progress: 1,
        status: 'done',
        info: { file_id: a.file_id, filename: name, content_type: '', size: 0, upload_date: '', metadata: {} },
        abort: new AbortController(),
      })
    }
  }

  /** After sending: forget the chips (the files now belong to the message). */
  function clear(): void {
    files.splice(0, files.length)
  }

  return { files, uploading, ready, add, remove, restore, clear }
}
