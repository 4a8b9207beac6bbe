import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { defineComponent, h } from 'vue'
import { clearTokens, setFetch, setTokens } from '@/api/client'
import ChatPage from '@/pages/ChatPage.vue'
import { useToasts } from '@/stores/toast'
import { FakeRfb, useFakeRfb } from './fake-rfb'
import { freshPinia, mountWith } from './helpers'

async function until(cond: () => boolean, ms = 3000) {
  const t0 = Date.now()
  while (!cond()) {
    if (Date.now() - t0 > ms) throw new Error('timed out')
    await new Promise((r) => setTimeout(r, 5))
  }
}

const json = (data: unknown, status = 200, code = 0, msg = 'success') =>
  new Response(JSON.stringify({ code, msg, data }), { status, headers: { 'Content-Type': 'application/json' } })

const SHOT = '/api/v1/files/f1/download?signature=s&expires=4102444800'
let n = 0
const ev = (event: string, data: Record<string, unknown>) => ({ event, data: { event_id: `e${String(++n).padStart(4, '0')}`, timestamp: 1700000000 + n, ...data } })
const frame = (e: { event: string; data: { event_id: string } }) => `id: ${e.data.event_id}\nevent: ${e.event}\ndata: ${JSON.stringify(e.data)}\n\n`

/** A run paused on a question that suggests taking over the browser. */
function history(extra: ReturnType<typeof ev>[] = []) {
  n = 0
  const ask = { tool_call_id: 'ask1', name: 'message', function: 'message_ask_user', args: { text: 'Please log in for me.', suggest_user_takeover: 'browser' } }
  return [
    ev('message', { role: 'user', content: 'Buy the book', attachments: [] }),
    ev('tool', { tool_call_id: 'b1', name: 'browser', function: 'browser_navigate', args: { url: 'https://shop.example/' }, status: 'calling' }),
    ev('tool', { tool_call_id: 'b1', name: 'browser', function: 'browser_navigate', args: { url: 'https://shop.example/' }, status: 'called', content: { screenshot: SHOT } }),
    ev('tool', { ...ask, status: 'calling' }),
    ev('message', { role: 'assistant', content: 'Please log in for me.', attachments: [] }),
    ev('tool', { ...ask, status: 'called' }),
    ev('wait', {}),
    ...extra,
  ]
}

let events: ReturnType<typeof ev>[] = []
let requests: { url: string; body: unknown }[] = []
let takeoverAnswer: () => Response = () => json(null)
/** what each (attach / catch-up) stream of POST /chat carries before it ends */
let streams: string[] = []
let chatPosts = 0

beforeEach(() => {
  useFakeRfb()
  Element.prototype.scrollTo = () => {}
  setTokens('tok', 'r')
  events = history()
  requests = []
  streams = []
  chatPosts = 0
  takeoverAnswer = () => json(null)
  setFetch((async (url: string, init: RequestInit = {}) => {
    requests.push({ url, body: init.body ? JSON.parse(String(init.body)) : undefined })
    if (url === '/api/v1/sessions/s1') return json({ session_id: 's1', title: 'Shopping', status: 'waiting', events, is_shared: false })
    if (url.endsWith('/clear_unread_message_count')) return json(null)
    if (url === '/api/v1/sessions/s1/files') return json([])
    if (url === '/api/v1/sessions/s1/takeover') return takeoverAnswer()
    if (url === '/api/v1/sessions/s1/vnc/signed-url') return json({ signed_url: '/api/v1/sessions/s1/vnc?signature=x&expires=4102444800', expires_in: 120 })
    return json(null, 404, 404, 'Not found')
  }) as unknown as typeof fetch)
  // POST /chat (SSE): each stream replays what the test put there, then ends
  window.fetch = (async () => {
    chatPosts++
    const body = streams.shift() ?? ''
    return new Response(body, { status: 200, headers: { 'Content-Type': 'text/event-stream' } })
  }) as unknown as typeof fetch
})
afterEach(() => {
  clearTokens()
  document.body.innerHTML = ''
})

const stubs = {
  SharePopover: defineComponent({ props: { sessionId: String }, setup: () => () => h('button', 'Share') }),
}
const takeoverBodies = () => requests.filter((r) => r.url === '/api/v1/sessions/s1/takeover').map((r) => r.body)

describe('chat page: the agent\'s browser', () => {
  it('"Take over" on the question opens the browser tab, takes control, and "Hand back" returns it', async () => {
    const w = mountWith(ChatPage, { props: { id: 's1' }, attachTo: document.body, global: { stubs } }, freshPinia())
    await until(() => w.findAll('[data-test=tool-pill]').length === 2)
    // the browser call in words, with its screenshot
    expect(w.get('[data-test=tool-action]').text()).toBe('Navigating to shop.example')
    expect(w.get('[data-test=screenshot-thumb] img').attributes('src')).toBe(SHOT)

    // the question suggested taking over the browser
    await until(() => w.find('[data-test=ask-take-over]').exists())
    await until(() => chatPosts === 1) // the attach after the history (it ends at once)
    // the stored takeover event comes with the catch-up stream after the POST
    streams.push(frame(ev('takeover', { status: 'user' })))
    await w.get('[data-test=ask-take-over]').trigger('click')
    await until(() => takeoverBodies().length === 1)
    expect(takeoverBodies()).toEqual([{ action: 'take' }])
    expect(w.get('[data-test=tab-browser]').attributes('aria-selected')).toBe('true')
    expect(w.get('[data-test=chat-side]').classes()).toContain('fixed')

    // the view is interactive, with the banner
    await until(() => FakeRfb.all.length === 1)
    FakeRfb.last().connect()
    await until(() => w.find('[data-test=takeover-banner]').exists())
    expect(FakeRfb.last().viewOnly).toBe(false)
    expect(w.get('[data-test=vnc-screen]').attributes('data-view-only')).toBe('false')
    expect(w.find('[data-test=ask-take-over]').exists()).toBe(false)
    expect(w.find('[data-test=tab-browser-user]').exists()).toBe(true)
    await until(() => w.find('[data-test=takeover-note]').exists())
    expect(w.get('[data-test=takeover-note]').text()).toBe('You took control of the browser.')
    expect(chatPosts).toBe(2)

    // hand back: view-only again
    streams.push(frame({ event: 'takeover', data: { event_id: 'e9000', timestamp: 1700009000, status: 'agent' } } as ReturnType<typeof ev>))
    await w.get('[data-test=hand-back]').trigger('click')
    await until(() => takeoverBodies().length === 2)
    expect(takeoverBodies()[1]).toEqual({ action: 'hand_back' })
    await until(() => !w.find('[data-test=takeover-banner]').exists())
    expect(FakeRfb.last().viewOnly).toBe(true)
    await until(() => w.findAll('[data-test=takeover-note]').length === 2)
    expect(w.findAll('[data-test=takeover-note]')[1]!.text()).toBe('You handed the browser back to the agent.')
    // still waiting for the reply: "Take over" is offered again
    expect(w.find('[data-test=ask-take-over]').exists()).toBe(true)
    w.unmount()
  })

  it('after a reload the latest takeover event says who holds the browser', async () => {
    events = history([ev('takeover', { status: 'user' })])
    const w = mountWith(ChatPage, { props: { id: 's1' }, attachTo: document.body, global: { stubs } }, freshPinia())
    await until(() => w.findAll('[data-test=tool-pill]').length === 2)
    expect(w.find('[data-test=ask-take-over]').exists()).toBe(false)
    await w.get('[data-test=ask-open-browser]').trigger('click')
    expect(w.get('[data-test=tab-browser]').attributes('aria-selected')).toBe('true')
    await until(() => FakeRfb.all.length === 1)
    expect(FakeRfb.last().viewOnly).toBe(false)
    expect(w.find('[data-test=takeover-banner]').exists()).toBe(true)
    expect(takeoverBodies()).toEqual([])
    w.unmount()
  })

  it('a refused take-over (no browser running) is a toast and nothing changes', async () => {
    takeoverAnswer = () => json(null, 409, 409, 'No browser is running for this session.')
    const w = mountWith(ChatPage, { props: { id: 's1' }, attachTo: document.body, global: { stubs } }, freshPinia())
    await until(() => w.find('[data-test=ask-take-over]').exists())
    await w.get('[data-test=ask-take-over]').trigger('click')
    await until(() => useToasts().toasts.length === 1)
    expect(useToasts().toasts[0]!.text).toBe('No browser is running for this session.')
    expect(w.find('[data-test=takeover-banner]').exists()).toBe(false)
    expect(w.find('[data-test=ask-take-over]').exists()).toBe(true)
    w.unmount()
  })

  it('a finished run: the browser tab shows the latest screenshot, no live view, no take-over', async () => {
    events = [...history(), ev('message', { role: 'user', content: 'done', attachments: [] }), ev('done', {})]
    const w = mountWith(ChatPage, { props: { id: 's1' }, attachTo: document.body, global: { stubs } }, freshPinia())
    await until(() => w.findAll('[data-test=tool-pill]').length === 2)
    await w.get('[data-test=open-side]').trigger('click')
    await w.get('[data-test=tab-browser]').trigger('click')
    expect(w.get('[data-test=browser-shot]').attributes('src')).toBe(SHOT)
    expect(w.find('[data-test=vnc-screen]').exists()).toBe(false)
    expect(w.find('[data-test=take-over]').exists()).toBe(false)
    expect(w.find('[data-test=ask-take-over]').exists()).toBe(false)
    await new Promise((r) => setTimeout(r, 30))
    expect(requests.some((r) => r.url.includes('/vnc/'))).toBe(false)
    w.unmount()
  })
})
