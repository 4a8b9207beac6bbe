import { defineStore } from 'pinia'
import { ref } from 'vue'
import { call } from '@/api/client'
import { keepStreamOpen } from '@/api/sse'
import type { ListSessionItem } from '@/api/types'
import { useToasts } from './toast'

/** The sidebar's list, fed by the `POST /api/v1/sessions` SSE stream (event `sessions`). */
export const useSessions = defineStore('sessions', () => {
  const items = ref<ListSessionItem[]>([])
  const connected = ref(false)
  let ctrl: AbortController | null = null

  async function loadOnce(): Promise<void> {
    const r = await call('get', '/api/v1/sessions')
    items.value = r.sessions
  }

  /** Keeps the stream open (bounded backoff, 429 waits) until `stop()`. */
  function start(): void {
    if (ctrl) return
    const c = new AbortController()
    ctrl = c
    const toasts = useToasts()
    void keepStreamOpen({
      path: '/sessions',
      signal: c.signal,
      onConnected: (on) => {
        connected.value = on
      },
      onError: (e) => toasts.error(e),
      onEvent: (ev) => {
        if (ev.event === 'sessions' && Array.isArray(ev.data.sessions)) {
          items.value = ev.data.sessions as ListSessionItem[]
        }
      },
    })
  }

  function stop(): void {
    ctrl?.abort()
    ctrl = null
    connected.value = false
  }

  async function create(): Promise<string> {
    const r = await call('put', '/api/v1/sessions')
    return r.session_id
  }

  async function remove(id: string): Promise<void> {
    await call('delete', '/api/v1/sessions/{id}', { path: { id } })
    items.value = items.value.filter((s) => s.session_id !== id)
  }

  async function markRead(id: string): Promise<void> {
    await call('post', '/api/v1/sessions/{id}/clear_unread_message_count', { path: { id } })
    const s = items.value.find((x) => x.session_id === id)
    if (s) s.unread_message_count = 0
  }

  return { items, connected, start, stop, loadOnce, create, remove, markRead }
})
