/**
 * SSE with headers (POST streams, and GET streams that need `Authorization`) via
 * @microsoft/fetch-event-source. Its built-in retry is disabled (it would re-send the same
 * body); callers decide how to reconnect, with which cursor.
 */
import { fetchEventSource } from '@microsoft/fetch-event-source'
import { API_PREFIX, ApiError, authHeaders, errorFromResponse, getAccessToken, refreshAccessToken } from './client'

export interface StreamEvent {
  id: string
  event: string
  data: Record<string, unknown>
}

export interface SseOptions {
  path: string
  /** POST (default, with a JSON body) or GET (no body). */
  method?: 'GET' | 'POST'
  body?: unknown
  signal: AbortSignal
  onOpen?: () => void
  onEvent: (ev: StreamEvent) => void
}

class FatalOpen extends Error {
  constructor(readonly apiError: ApiError) {
    super(apiError.msg)
  }
}

async function openOnce(opts: SseOptions): Promise<void> {
  const url = opts.path.startsWith('/api/') ? opts.path : `${API_PREFIX}${opts.path}`
  try {
    const get = opts.method === 'GET'
    await fetchEventSource(url, {
      method: get ? 'GET' : 'POST',
      headers: get
        ? { ...authHeaders(), Accept: 'text/event-stream' }
        : { ...authHeaders(), 'Content-Type': 'application/json', Accept: 'text/event-stream' },
      body: get ? undefined : JSON.stringify(opts.body ?? {}),
      signal: opts.signal,
      openWhenHidden: true,
      async onopen(res) {
        const ct = res.headers.get('content-type') ?? ''
        if (res.ok && ct.includes('text/event-stream')) {
          opts.onOpen?.()
          return
        }
        throw new FatalOpen(await errorFromResponse(res))
      },
      onmessage(m) {
        if (!m.event && !m.data) return
        let data: Record<string, unknown> = {}
        if (m.data) {
          try {
            const parsed: unknown = JSON.parse(m.data)
            if (parsed && typeof parsed === 'object') data = parsed as Record<string, unknown>
          } catch {
            return
          }
        }
        opts.onEvent({ id: m.id, event: m.event || 'message', data })
      },
      onerror(err) {
        throw err // no automatic retry
      },
    })
  } catch (e) {
    if (e instanceof FatalOpen) throw e.apiError
    if (e instanceof ApiError) throw e
    if (opts.signal.aborted) return
    const msg = e instanceof Error ? e.message : String(e)
    throw new ApiError(0, 0, `Connection lost: ${msg}`, null)
  }
}

/** Opens the stream; on 401 refreshes once and retries. Resolves when the server closes it. */
export async function openSse(opts: SseOptions): Promise<void> {
  const sentWith = getAccessToken()
  try {
    await openOnce(opts)
  } catch (e) {
    if (e instanceof ApiError && e.status === 401 && (await refreshAccessToken(sentWith))) {
      await openOnce(opts)
      return
    }
    throw e
  }
}

/** Bounded exponential backoff: 1 s, 2 s, 4 s … capped at 15 s. */
export function backoffMs(attempt: number): number {
  return Math.min(15000, 1000 * 2 ** Math.max(0, attempt))
}

export const MAX_RECONNECT_ATTEMPTS = 8

/** True for failures worth retrying (network, 5xx); 4xx are the user's to see. */
export function isRetryable(e: unknown): boolean {
  return e instanceof ApiError ? e.status === 0 || e.status >= 500 : true
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(done, ms)
    signal.addEventListener('abort', done, { once: true })
    function done() {
      clearTimeout(t)
      signal.removeEventListener('abort', done)
      resolve()
    }
  })
}

export interface LiveStreamOptions extends SseOptions {
  /** true once the stream is open, false whenever it closes */
  onConnected: (on: boolean) => void
  /** a failure the user should see */
  onError: (e: unknown) => void
}

/**
 * Keeps a live stream (the session list, the subscription) open until `signal` aborts:
 * reconnects with bounded backoff, waits `retry_after` on 429 (too many open streams), and
 * reports a failure once it repeats (third attempt in a row) or cannot be retried (then
 * gives up).
 */
export async function keepStreamOpen(opts: LiveStreamOptions): Promise<void> {
  const { signal } = opts
  let attempt = 0
  while (!signal.aborted) {
    let wait: number | null = null
    try {
      await openSse({
        ...opts,
        onOpen: () => {
          opts.onConnected(true)
          attempt = 0
          opts.onOpen?.()
        },
      })
    } catch (e) {
      if (signal.aborted) break
      if (e instanceof ApiError && e.status === 429) {
        opts.onError(e)
        wait = 1000 * Math.max(1, e.retryAfter ?? 30)
      } else if (!isRetryable(e)) {
        opts.onError(e)
        break
      } else if (attempt === 2) {
        opts.onError(e)
      }
    } finally {
      opts.onConnected(false)
    }
    if (signal.aborted) break
    await sleep(wait ?? backoffMs(attempt++), signal)
  }
}
