import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { clearTokens, setFetch, setTokens } from '@/api/client'
import ChatPage from '@/pages/ChatPage.vue'
import { useBilling } from '@/stores/billing'
import { useToasts } from '@/stores/toast'
import { freshPinia, mountWith, subscription } from './helpers'

async function until(cond: () => boolean, ms = 3000) {
  const t0 = Date.now()
  while (!cond()) {
    if (Date.now() - t0 > ms) throw new Error('timed out')
    await new Promise((r) => setTimeout(r, 5))
  }
}

const json = (data: unknown, status = 200, code = 0, msg = 'success') =>
  new Response(JSON.stringify({ code, msg, data }), { status, headers: { 'Content-Type': 'application/json' } })

let fileListCalls = 0
let chatBodies: Record<string, unknown>[] = []

function api() {
  fileListCalls = 0
  chatBodies = []
  setFetch((async (url: string) => {
    if (url === '/api/v1/sessions/s1') return json({ session_id: 's1', title: 'T', status: 'completed', events: [], is_shared: false })
    if (url.endsWith('/clear_unread_message_count')) return json(null)
    if (url === '/api/v1/sessions/s1/files') {
      fileListCalls++
      return json(fileListCalls > 1 ? [{ file_id: 'f9', filename: 'out.csv', content_type: 'text/csv', size: 12, upload_date: '', metadata: {}, file_url: '/api/v1/files/f9?expires=4102444800&signature=s' }] : [])
    }
    if (url.endsWith('/billing/subscription')) return json(subscription({ monthly_agent_runs: 10 }))
    return json(null, 404, 404, 'Not found')
  }) as unknown as typeof fetch)
}

/** window.fetch serves the chat SSE POST (fetch-event-source uses it). */
function chatAnswers(answer: () => Response) {
  const f = vi.fn(async (_u: RequestInfo | URL, init?: RequestInit) => {
    chatBodies.push(JSON.parse(String(init?.body)) as Record<string, unknown>)
    return answer()
  })
  window.fetch = f as unknown as typeof fetch
}

function sse(events: [string, Record<string, unknown>][]) {
  const text = events.map(([e, d], i) => `id: ${i + 1}\nevent: ${e}\ndata: ${JSON.stringify({ event_id: String(i + 1), timestamp: 1, ...d })}\n\n`).join('')
  return new Response(text, { status: 200, headers: { 'Content-Type': 'text/event-stream' } })
}

beforeEach(() => {
  // jsdom has no layout: the timeline's auto-scroll needs a stand-in
  Element.prototype.scrollTo = () => {}
  setTokens('tok', 'r')
  api()
})
afterEach(() => clearTokens())

describe('chat page', () => {
  it('a 402 shows the limit banner with the server’s message and puts the text back', async () => {
    const pinia = freshPinia()
    useBilling().subscription = subscription({ monthly_agent_runs: 9 })
    chatAnswers(() =>
      json(
        { reason: 'limit_reached', plan: 'free', used: 10, limit: 10, resets_at: '2026-02-01T00:00:00Z' },
        402,
        402,
        'You have used all 10 runs of your Free plan for this period.',
      ),
    )
    const w = mountWith(ChatPage, { props: { id: 's1' }, attachTo: document.body }, pinia)
    await until(() => fileListCalls === 1)
    await w.get('textarea').setValue('one more task')
    await w.get('form').trigger('submit')
    await until(() => w.find('[data-test=limit-banner]').exists())
    const banner = w.get('[data-test=limit-banner]')
    expect(banner.text()).toContain('You have used all 10 runs of your Free plan for this period.')
    expect(banner.text()).toMatch(/Runs reset on .*2026/)
    expect(chatBodies[0]).toMatchObject({ message: 'one more task' })
    expect((w.get('textarea').element as HTMLTextAreaElement).value).toBe('one more task')
    // not a toast: the banner is the message; no "Reconnect" for a refused message
    expect(useToasts().toasts).toHaveLength(0)
    expect(w.text()).not.toContain('Reconnect')
    // the meter is re-read, and now blocks the box
    await until(() => useBilling().usage.blocked)
    await w.vm.$nextTick()
    expect(w.get('textarea').attributes('disabled')).toBeDefined()
    w.unmount()
  })

  it('a 429 is a toast with the wait', async () => {
    const pinia = freshPinia()
    chatAnswers(() => new Response(JSON.stringify({ code: 429, msg: 'Too many', data: { retry_after: 7 } }), { status: 429, headers: { 'Retry-After': '7' } }))
    const w = mountWith(ChatPage, { props: { id: 's1' } }, pinia)
    await until(() => fileListCalls === 1)
    await w.get('textarea').setValue('hi')
    await w.get('form').trigger('submit')
    await until(() => useToasts().toasts.length === 1)
    expect(useToasts().toasts[0]!.text).toBe('Too many requests: try again in 7 s.')
    w.unmount()
  })

  it('sends attachments, and refreshes the file list after file tools and at the end of the run', async () => {
    const pinia = freshPinia()
    chatAnswers(() =>
      sse([
        ['message', { role: 'user', content: 'make a csv', attachments: [] }],
        ['tool', { tool_call_id: 'c1', name: 'file', function: 'file_write', args: { file: '/home/ubuntu/out.csv' }, status: 'calling' }],
        ['tool', { tool_call_id: 'c1', name: 'file', function: 'file_write', args: { file: '/home/ubuntu/out.csv' }, status: 'called', content: { content: 'a,b' } }],
        [
          'message',
          {
            role: 'assistant',
            content: 'Done.',
            attachments: [{ file_id: 'f9', filename: 'out.csv', content_type: 'text/csv', size: 12, file_url: '/api/v1/files/f9?expires=4102444800&signature=s' }],
          },
        ],
        ['done', {}],
      ]),
    )
    const w = mountWith(ChatPage, { props: { id: 's1' } }, pinia)
    await until(() => fileListCalls === 1)
    ;(w.findComponent({ name: 'ChatComposer' }).vm as unknown as { restore: (d: unknown) => void }).restore({
      message: '',
      attachments: [{ file_id: 'f1', filename: 'in.txt' }],
    })
    await w.get('textarea').setValue('make a csv')
    await w.get('form').trigger('submit')
    await until(() => fileListCalls >= 2)
    expect(chatBodies[0]).toMatchObject({ message: 'make a csv', attachments: [{ file_id: 'f1', filename: 'in.txt' }] })
    await until(() => w.get('[data-test=session-files]').text().includes('out.csv'))
    // the assistant's attachment is a card in the timeline too
    expect(w.findAll('[data-test=attachment-card]').length).toBeGreaterThanOrEqual(2)
    w.unmount()
  })
})
