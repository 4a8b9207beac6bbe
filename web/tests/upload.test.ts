import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { ApiError, clearTokens, setFetch, setTokens } from '@/api/client'
import { checkUpload, setXhrFactory, uploadFile, type XhrLike } from '@/api/upload'
import { useAttachments } from '@/lib/attachments'
import { flush } from './helpers'

type Reply = { status: number; body: unknown; headers?: Record<string, string> } | 'network'

/** A scripted XMLHttpRequest: each send() answers with the next reply. */
class FakeXhr implements XhrLike {
  static replies: Reply[] = []
  static sent: FakeXhr[] = []
  method = ''
  url = ''
  headers: Record<string, string> = {}
  body: FormData | null = null
  status = 0
  responseText = ''
  responseHeaders: Record<string, string> = {}
  upload: XhrLike['upload'] = { onprogress: null }
  onload: (() => void) | null = null
  onerror: (() => void) | null = null
  onabort: (() => void) | null = null
  aborted = false
  open(method: string, url: string) {
    this.method = method
    this.url = url
  }
  setRequestHeader(k: string, v: string) {
    this.headers[k] = v
  }
  getResponseHeader(k: string) {
    return this.responseHeaders[k] ?? null
  }
  send(body: FormData) {
    this.body = body
    FakeXhr.sent.push(this)
    const reply = FakeXhr.replies.shift()
    setTimeout(() => {
      if (this.aborted) return
      if (!reply || reply === 'network') return this.onerror?.()
      this.upload.onprogress?.({ lengthComputable: true, loaded: 50, total: 100 })
      this.status = reply.status
      this.responseText = JSON.stringify(reply.body)
      this.responseHeaders = reply.headers ?? {}
      this.onload?.()
    }, 0)
  }
  abort() {
    this.aborted = true
    setTimeout(() => this.onabort?.(), 0)
  }
}

const info = { file_id: 'f1', filename: 'a.txt', content_type: 'text/plain', size: 3, upload_date: '2026-01-01T00:00:00Z', metadata: {}, file_url: '/api/v1/files/f1?expires=9&signature=s' }
const ok = (data: unknown): Reply => ({ status: 200, body: { code: 0, msg: 'success', data } })
const file = (name = 'a.txt', size = 3) => new File([new Uint8Array(size)], name, { type: 'text/plain' })

beforeEach(() => {
  FakeXhr.replies = []
  FakeXhr.sent = []
  setXhrFactory(() => new FakeXhr())
  setTokens('tok', 'r1')
})
afterEach(() => clearTokens())

describe('upload helper', () => {
  it('checks the size before uploading', () => {
    expect(checkUpload({ name: 'big.bin', size: 10 * 1024 * 1024 + 1 })).toBe('big.bin is 10 MB; files can be at most 10 MB.')
    expect(checkUpload({ name: 'ok.bin', size: 10 * 1024 * 1024 })).toBeNull()
    expect(checkUpload({ name: 'x', size: 2049 }, 2048)).toContain('at most 2.0 KB')
  })

  it('refuses a file over the limit without sending a byte', async () => {
    const e = await uploadFile(file('big.bin', 2049), { maxBytes: 2048 }).catch((x: unknown) => x)
    expect(e).toBeInstanceOf(ApiError)
    expect(e).toMatchObject({ status: 413 })
    expect((e as ApiError).msg).toContain('big.bin')
    expect(FakeXhr.sent).toHaveLength(0)
  })

  it('posts multipart part `file` with the bearer token and reports progress', async () => {
    FakeXhr.replies = [ok(info)]
    const progress: number[] = []
    await expect(uploadFile(file(), { onProgress: (p) => progress.push(p) })).resolves.toEqual(info)
    const x = FakeXhr.sent[0]!
    expect([x.method, x.url]).toEqual(['POST', '/api/v1/files'])
    expect(x.headers.Authorization).toBe('Bearer tok')
    expect((x.body!.get('file') as File).name).toBe('a.txt')
    expect(progress).toEqual([0.5, 1])
  })

  it.each([
    [413, 'The file is larger than the 10 MiB upload limit.'],
    [415, 'Files of type application/x-msdownload are not allowed.'],
  ])('shows the server’s message for %i', async (status, msg) => {
    FakeXhr.replies = [{ status, body: { code: status, msg, data: null } }]
    await expect(uploadFile(file())).rejects.toMatchObject({ status, msg })
  })

  it('refreshes once on 401 and retries', async () => {
    const f = vi.fn(async () =>
      new Response(JSON.stringify({ code: 0, msg: 'success', data: { access_token: 'new', refresh_token: 'r2', token_type: 'bearer', expires_in: 900 } }), {
        status: 200,
        headers: { 'Content-Type': 'application/json' },
      }),
    )
    setFetch(f as unknown as typeof fetch)
    FakeXhr.replies = [{ status: 401, body: { code: 401, msg: 'Token expired', data: null } }, ok(info)]
    await expect(uploadFile(file())).resolves.toEqual(info)
    expect(f).toHaveBeenCalledTimes(1)
    expect(FakeXhr.sent.map((x) => x.headers.Authorization)).toEqual(['Bearer tok', 'Bearer new'])
  })

  it('429 carries retryAfter; a network failure is status 0', async () => {
    FakeXhr.replies = [{ status: 429, body: { code: 429, msg: 'Slow down', data: null }, headers: { 'Retry-After': '12' } }]
    await expect(uploadFile(file())).rejects.toMatchObject({ status: 429, retryAfter: 12 })
    FakeXhr.replies = ['network']
    await expect(uploadFile(file())).rejects.toMatchObject({ status: 0 })
  })

  it('can be aborted', async () => {
    FakeXhr.replies = [ok(info)]
    const c = new AbortController()
    const p = uploadFile(file(), { signal: c.signal })
    c.abort()
    await expect(p).rejects.toMatchObject({ name: 'AbortError' })
  })
})

describe('attachments of the next message', () => {
  it('uploads, exposes {file_id, filename}, and reports refusals', async () => {
    const errors: string[] = []
    const a = useAttachments({ onError: (m) => errors.push(m), maxBytes: 100 })
    FakeXhr.replies = [ok(info), { status: 415, body: { code: 415, msg: 'Type not allowed.', data: null } }]
    await a.add([file('a.txt'), file('evil.exe'), file('huge.bin', 101)])
    expect(a.ready.value).toEqual([{ file_id: 'f1', filename: 'a.txt' }])
    expect(a.files).toHaveLength(1)
    expect(errors).toEqual([expect.stringContaining('huge.bin is 101 B'), 'evil.exe: Type not allowed.'])
    expect(FakeXhr.sent).toHaveLength(2)
  })

  it('removing an uploaded file deletes it on the server; failures are reported', async () => {
    const calls: string[] = []
    setFetch((async (url: string, init: RequestInit) => {
      calls.push(`${init.method} ${url}`)
      return new Response(JSON.stringify({ code: 404, msg: 'File not found.', data: null }), { status: 404 })
    }) as unknown as typeof fetch)
    const errors: string[] = []
    const a = useAttachments({ onError: (m) => errors.push(m) })
    FakeXhr.replies = [ok(info)]
    await a.add([file('a.txt')])
    await a.remove(a.files[0]!.key)
    expect(a.files).toHaveLength(0)
    expect(calls).toEqual(['DELETE /api/v1/files/f1'])
    expect(errors).toEqual(['a.txt: File not found.'])
  })

  it('removing a file while it uploads aborts the upload', async () => {
    const a = useAttachments({ onError: () => {} })
    FakeXhr.replies = [ok(info)]
    const p = a.add([file('a.txt')])
    expect(a.uploading.value).toBe(true)
    await a.remove(a.files[0]!.key)
    await p
    await flush()
    expect(FakeXhr.sent[0]!.aborted).toBe(true)
    expect(a.files).toHaveLength(0)
    expect(a.ready.value).toEqual([])
  })
})
