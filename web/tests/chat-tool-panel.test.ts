import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { defineComponent, h } from 'vue'
import { clearTokens, setFetch, setTokens } from '@/api/client'
import ChatPage from '@/pages/ChatPage.vue'
import { useFakeRfb } from './fake-rfb'
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

const fileTool = (id: string, n: number, status: 'calling' | 'called') => ({
  event: 'tool',
  data: {
    event_id: String(n),
    timestamp: n,
    tool_call_id: id,
    name: 'file',
    function: 'file_read',
    args: { file: `/home/ubuntu/${id}.txt` },
    status,
    ...(status === 'called' ? { content: { content: `content of ${id}` } } : {}),
  },
})

const frame = (e: { event: string; data: { event_id: string } }) => `id: ${e.data.event_id}\nevent: ${e.event}\ndata: ${JSON.stringify(e.data)}\n\n`

let push: (chunk: string) => void = () => {}

beforeEach(() => {
  useFakeRfb()
  Element.prototype.scrollTo = () => {}
  setTokens('tok', 'r')
  setFetch((async (url: string) => {
    if (url === '/api/v1/sessions/s1')
      return json({
        session_id: 's1',
        title: 'Research',
        status: 'running',
        events: [
          { event: 'message', data: { event_id: '1', timestamp: 1, role: 'user', content: 'go', attachments: [] } },
          {
            event: 'plan',
            data: {
              event_id: '1p',
              timestamp: 1,
              steps: [
                { id: 'p1', description: 'Read the inputs', status: 'completed' },
                { id: 'p2', description: 'Write the report', status: 'running' },
              ],
            },
          },
          fileTool('a', 2, 'called'),
          fileTool('b', 3, 'calling'),
        ],
        is_shared: false,
      })
    if (url.endsWith('/clear_unread_message_count')) return json(null)
    if (url === '/api/v1/sessions/s1/files') return json([])
    if (url === '/api/v1/sessions/s1/vnc/signed-url') return json(null, 409, 409, 'No browser is running for this session yet.')
    return json(null, 404, 404, 'Not found')
  }) as unknown as typeof fetch)
  // the attach stream stays open; the test pushes events into it
  window.fetch = (async () => {
    const enc = new TextEncoder()
    const body = new ReadableStream<Uint8Array>({
      start(c) {
        push = (s) => c.enqueue(enc.encode(s))
      },
    })
    return new Response(body, { status: 200, headers: { 'Content-Type': 'text/event-stream' } })
  }) as unknown as typeof fetch
})
afterEach(() => {
  clearTokens()
  document.body.innerHTML = ''
})

const stubs = {
  SharePopover: defineComponent({ props: { sessionId: String }, setup: () => () => h('button', { 'data-test': 'share-stub' }, 'Share') }),
}

describe('chat page tool panel', () => {
  it('follows the live call; an older pill stops following until "Jump to live"', async () => {
    const w = mountWith(ChatPage, { props: { id: 's1' }, attachTo: document.body, global: { stubs } }, freshPinia())
    await until(() => w.findAll('[data-test=tool-pill]').length === 2)
    // the computer tab is chosen once there are tool calls, on the latest one
    expect(w.get('[data-test=tab-computer]').attributes('aria-selected')).toBe('true')
    await until(() => w.find('[data-test=live-badge]').exists())
    expect(w.get('[data-test=file-path]').text()).toBe('/home/ubuntu/b.txt')
    expect(w.findAll('[data-test=tool-pill]')[1]!.attributes('aria-current')).toBe('true')

    // a live call arrives: the panel follows it
    push(frame(fileTool('b', 4, 'called')) + frame(fileTool('c', 5, 'calling')))
    await until(() => w.findAll('[data-test=tool-pill]').length === 3)
    expect(w.get('[data-test=file-path]').text()).toBe('/home/ubuntu/c.txt')

    // the plan stays in view beside the computer, and folds away to its current step
    const plan = w.get('[data-test=plan]')
    expect(plan.text()).toContain('Read the inputs')
    expect(plan.text()).toContain('1 / 2')
    await plan.get('[data-test=plan-toggle]').trigger('click')
    expect(plan.get('[data-test=plan-toggle]').attributes('aria-expanded')).toBe('false')
    expect(plan.get('ol').attributes('style')).toContain('display: none')
    expect(plan.get('p').text()).toContain('Write the report')

    // the user opens the first call
    await w.findAll('[data-test=tool-pill]')[0]!.trigger('click')
    expect(w.get('[data-test=file-path]').text()).toBe('/home/ubuntu/a.txt')
    expect(w.get('[data-test=file-content]').text()).toBe('content of a')
    expect(w.findAll('[data-test=tool-pill]')[0]!.attributes('aria-current')).toBe('true')
    expect(w.find('[data-test=jump-to-live]').exists()).toBe(true)

    // new calls do not move the panel away from it
    push(frame(fileTool('d', 6, 'calling')))
    await until(() => w.findAll('[data-test=tool-pill]').length === 4)
    expect(w.get('[data-test=file-path]').text()).toBe('/home/ubuntu/a.txt')

    // back to live
    await w.get('[data-test=jump-to-live]').trigger('click')
    expect(w.get('[data-test=file-path]').text()).toBe('/home/ubuntu/d.txt')
    expect(w.find('[data-test=jump-to-live]').exists()).toBe(false)

    // clicking the latest pill keeps following
    await w.findAll('[data-test=tool-pill]')[3]!.trigger('click')
    push(frame(fileTool('e', 7, 'calling')))
    await until(() => w.findAll('[data-test=tool-pill]').length === 5)
    expect(w.get('[data-test=file-path]').text()).toBe('/home/ubuntu/e.txt')
    w.unmount()
  })

  it('phones: the side column opens full screen from the header and closes with Escape', async () => {
    const w = mountWith(ChatPage, { props: { id: 's1' }, attachTo: document.body, global: { stubs } }, freshPinia())
    await until(() => w.findAll('[data-test=tool-pill]').length === 2)
    const side = w.get('[data-test=chat-side]')
    expect(side.classes()).toContain('hidden')
    const opener = w.get('[data-test=open-side]')
    ;(opener.element as HTMLElement).focus()
    await opener.trigger('click')
    await until(() => document.activeElement === w.get('[data-test=close-side]').element)
    expect(side.classes()).toContain('fixed')
    expect(side.attributes('role')).toBe('dialog')
    expect(opener.attributes('aria-expanded')).toBe('true')

    // tabs switch with the arrow keys: computer, browser, files
    await w.get('[data-test=tab-computer]').trigger('keydown', { key: 'ArrowRight' })
    expect(w.get('[data-test=tab-browser]').attributes('aria-selected')).toBe('true')
    expect(document.activeElement).toBe(w.get('[data-test=tab-browser]').element)
    await until(() => w.find('[data-test=browser-not-running]').exists())
    await w.get('[data-test=tab-browser]').trigger('keydown', { key: 'ArrowRight' })
    expect(w.get('[data-test=tab-files]').attributes('aria-selected')).toBe('true')
    expect(document.activeElement).toBe(w.get('[data-test=tab-files]').element)
    expect(w.get('#chat-tabpanel-files').attributes('style') ?? '').not.toContain('display: none')

    await side.trigger('keydown', { key: 'Escape' })
    expect(side.classes()).toContain('hidden')
    expect(document.activeElement).toBe(opener.element)

    // a pill opens it on the computer tab
    await w.findAll('[data-test=tool-pill]')[0]!.trigger('click')
    expect(side.classes()).toContain('fixed')
    expect(w.get('[data-test=tab-computer]').attributes('aria-selected')).toBe('true')
    expect(w.get('[data-test=file-path]').text()).toBe('/home/ubuntu/a.txt')
    await w.get('[data-test=close-side]').trigger('click')
    expect(side.classes()).toContain('hidden')
    w.unmount()
  })
})
