/**
 * The chat page's stream controller: history, then live events; reconnects with the cursor
 * (bounded backoff) and never re-sends a message: every send carries a `client_message_id`,
 * and once the server accepted the POST, reconnects only attach (no message).
 */
import { reactive, ref } from 'vue'
import { call } from '@/api/client'
import { backoffMs, isRetryable, MAX_RECONNECT_ATTEMPTS, openSse } from '@/api/sse'
import type { Attachment, ChatRequest } from '@/api/types'
import { applyEvent, createTimeline, settleTools, type SseEvent, type Timeline } from './timeline'
import { uuid } from './uuid'

export type Connection = 'idle' | 'open' | 'reconnecting' | 'failed'

export interface ChatHooks {
  /**
   * A failure the user must see. `unsent` is the request whose message the server never
   * accepted (402, 409, 429…), so the page can put the text back in the box.
   */
  onError: (e: unknown, unsent: ChatRequest | null) => void
  /** Every live event, after it was applied. */
  onEvent?: (ev: SseEvent) => void
}

export function useChat(sessionId: string, hooks: ChatHooks) {
  const timeline = reactive(createTimeline()) as Timeline
  const connection = ref<Connection>('idle')
  const retryInSec = ref(0)
  const sessionStatus = ref<string>('pending')
  let ctrl: AbortController | null = null

  function apply(ev: SseEvent): boolean {
    return applyEvent(timeline, ev)
  }

  async function loadHistory(): Promise<void> {
    const s = await call('get', '/api/v1/sessions/{id}', { path: { id: sessionId } })
    sessionStatus.value = s.status
    if (s.title) timeline.title = s.title
    for (const h of s.events) apply({ event: h.event, data: h.data as Record<string, unknown> })
    if (!['running', 'pending', 'waiting'].includes(s.status)) settleTools(timeline)
  }

  function sleep(ms: number, signal: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      retryInSec.value = Math.ceil(ms / 1000)
      const tick = setInterval(() => (retryInSec.value = Math.max(0, retryInSec.value - 1)), 1000)
      const t = setTimeout(done, ms)
      signal.addEventListener('abort', done, { once: true })
      function done() {
        clearTimeout(t)
        clearInterval(tick)
        resolve()
      }
    })
  }

  /**
   * Runs one logical stream: the first POST may carry a message; after the server accepted
   * it (stream opened), reconnects only carry the cursor.
   */
  async function run(first: ChatRequest, once = false): Promise<void> {
    ctrl?.abort()
    const c = new AbortController()
    ctrl = c
    let body: ChatRequest = { ...first, event_id: timeline.lastEventId }
    let attempt = 0
    while (!c.signal.aborted) {
      let gotEvents = false
      let ended = false
      try {
        await openSse({
          path: `/sessions/${encodeURIComponent(sessionId)}/chat`,
          body,
          signal: c.signal,
          onOpen: () => {
            if (!once) connection.value = 'open'
            // accepted: from now on only attach, never send the message again
            body = {}
          },
          onEvent: (ev) => {
            gotEvents = true
            attempt = 0
            const e = { event: ev.event, data: ev.data }
            if (apply(e)) hooks.onEvent?.(e)
            if (ev.event === 'done' || ev.event === 'wait') ended = true
          },
        })
        // the server closed the stream
        if (once || ended || !gotEvents || c.signal.aborted) break
      } catch (e) {
        if (c.signal.aborted || once) break
        if (!isRetryable(e) || attempt >= MAX_RECONNECT_ATTEMPTS) {
          const unsent = body.message ? body : null
          // a refused message (402, 409, 429…) left no stream to reconnect to
          connection.value = unsent && !isRetryable(e) ? 'idle' : 'failed'
          if (ctrl === c) ctrl = null
          hooks.onError(e, unsent)
          return
        }
      }
      connection.value = 'reconnecting'
      await sleep(backoffMs(attempt++), c.signal)
      // keep the message (and its client_message_id) only if it was never accepted
      body = { ...body, event_id: timeline.lastEventId }
    }
    if (ctrl === c) {
      ctrl = null
      if (connection.value !== 'failed') connection.value = 'idle'
    }
  }

  /** Attach to the session's stream (replay after the cursor, then live). */
  function attach(): Promise<void> {
    return run({})
  }

  /**
   * When no stream is open: applies the events stored after the cursor, once, without
   * reconnecting (a `takeover` recorded while the run waits for a reply reaches the page this
   * way). Failures are quiet: the next attach catches up anyway.
   */
  function catchUp(): Promise<void> {
    if (ctrl) return Promise.resolve()
    return run({}, true)
  }

  function send(message: string, attachments: Attachment[] = []): Promise<void> {
    const req: ChatRequest = { message, timestamp: Math.floor(Date.now() / 1000), client_message_id: uuid() }
    if (attachments.length) req.attachments = attachments
    return run(req)
  }

  async function stop(): Promise<void> {
    await call('post', '/api/v1/sessions/{id}/stop', { path: { id: sessionId } })
  }

  function close(): void {
    ctrl?.abort()
    ctrl = null
    connection.value = 'idle'
  }

  return { timeline, connection, retryInSec, sessionStatus, loadHistory, attach, catchUp, send, stop, close }
}
