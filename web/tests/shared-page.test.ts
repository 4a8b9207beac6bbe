import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { clearTokens, setFetch, setTokens } from '@/api/client'
import SharedPage from '@/pages/SharedPage.vue'
import { flush, mountWith } from './helpers'

const json = (data: unknown, status = 200, code = 0, msg = 'success', headers: Record<string, string> = {}) =>
  new Response(JSON.stringify({ code, msg, data }), { status, headers: { 'Content-Type': 'application/json', ...headers } })

const HOSTILE = [
  'Here is the result.',
  '',
  '<script>window.__pwned = 1</script>',
  '<img src=x onerror="window.__pwned = 1">',
  '[click me](javascript:window.__pwned=1) and [docs](https://example.com/docs)',
  '<a href="javascript:alert(1)" onclick="alert(1)">raw</a>',
].join('\n')

let n = 0
const ev = (event: string, data: Record<string, unknown>) => ({ event, data: { event_id: String(++n), timestamp: 1700000000 + n, ...data } })

function history() {
  n = 0
  return [
    ev('title', { title: 'Shared research' }),
    ev('message', { role: 'user', content: 'Find the docs and run ls', attachments: [] }),
    ev('plan', { steps: [{ id: 'p1', description: 'Search the web', status: 'pending' }, { id: 'p2', description: 'List files', status: 'pending' }] }),
    ev('step', { id: 'p1', description: 'Search the web', status: 'running' }),
    ev('tool', { tool_call_id: 'c1', name: 'search', function: 'info_search_web', args: { query: 'ironhand docs' }, status: 'calling' }),
    ev('tool', { tool_call_id: 'c1', name: 'search', function: 'info_search_web', args: { query: 'ironhand docs' }, status: 'called', content: { results: [] } }),
    ev('step', { id: 'p1', description: 'Search the web', status: 'completed' }),
    ev('tool', { tool_call_id: 'c2', name: 'shell', function: 'shell_exec', args: { command: 'ls -la' }, status: 'called', content: { console: [{ ps1: '$', command: 'ls -la', output: 'a.txt' }] } }),
    ev('message', {
      role: 'assistant',
      content: HOSTILE,
      attachments: [{ file_id: 'f1', filename: 'report.csv', content_type: 'text/csv', size: 10, file_url: '/api/v1/files/f1/download?expires=4102444800&signature=s' }],
    }),
    ev('done', {}),
  ]
}

let requests: { url: string; auth: string | null }[] = []
let respond: (url: string) => Response

beforeEach(() => {
  requests = []
  // a reader may hold a token of their own: the shared page never sends it
  setTokens('tok', 'ref')
  respond = (url) => {
    if (url === '/api/v1/sessions/shared/s1') return json({ session_id: 's1', title: 'Shared research', status: 'completed', events: history(), is_shared: true })
    if (url === '/api/v1/sessions/s1/share/files')
      return json([{ file_id: 'f2', filename: 'out.zip', content_type: 'application/zip', size: 2048, upload_date: '', metadata: {}, file_url: '/api/v1/files/f2/download?expires=4102444800&signature=t' }])
    return json(null, 404, 404, 'Not found')
  }
  setFetch((async (url: string, init: RequestInit = {}) => {
    const h = (init.headers ?? {}) as Record<string, string>
    requests.push({ url, auth: h.Authorization ?? null })
    return respond(url)
  }) as unknown as typeof fetch)
})
afterEach(() => {
  clearTokens()
  delete (window as { __pwned?: unknown }).__pwned
  document.body.innerHTML = ''
})

async function page(id = 's1') {
  const w = mountWith(SharedPage, { props: { id }, attachTo: document.body })
  await flush()
  await flush()
  return w
}

describe('shared page', () => {
  it('replays the conversation read-only: messages, tool pills, plan, files', async () => {
    const w = await page()
    expect(requests.map((r) => r.url).sort()).toEqual(['/api/v1/sessions/s1/share/files', '/api/v1/sessions/shared/s1'])
    expect(requests.every((r) => r.auth === null)).toBe(true)
    expect(w.get('[data-test=shared-title]').text()).toBe('Shared research')
    expect(w.get('[data-test=read-only-note]').text()).toBe('Read-only')
    const tl = w.get('[data-test=shared-timeline]')
    expect(tl.text()).toContain('Find the docs and run ls')
    expect(tl.text()).toContain('Here is the result.')
    expect(w.findAllComponents({ name: 'MessageBubble' })).toHaveLength(2)
    expect(w.findAllComponents({ name: 'ToolPill' })).toHaveLength(2)
    expect(tl.text()).toContain('ls -la')
    expect(tl.text()).toContain('Task finished.')
    // plan panel and session files
    expect(w.text()).toContain('Search the web')
    expect(w.text()).toContain('1 / 2')
    expect(w.get('[data-test=shared-files]').text()).toContain('out.zip')
    // the message's own attachment is a card in the timeline
    expect(tl.findAll('[data-test=attachment-card]').map((c) => c.get('[data-test=filename]').text())).toEqual(['report.csv'])
    // read-only: no composer, no stop
    expect(w.find('textarea').exists()).toBe(false)
    expect(w.find('form').exists()).toBe(false)
    w.unmount()
  })

  it('sanitises hostile markdown in a message', async () => {
    const w = await page()
    const tl = w.get('[data-test=shared-timeline]').element
    expect(tl.querySelector('script')).toBeNull()
    expect(tl.querySelector('img[onerror]')).toBeNull()
    // the hostile HTML is shown as text at most: no element carries a handler or a script URL
    for (const el of tl.querySelectorAll('*')) {
      for (const attr of el.attributes) {
        expect(attr.name).not.toMatch(/^on/i)
        expect(attr.value).not.toMatch(/^\s*javascript:/i)
      }
    }
    for (const a of tl.querySelectorAll('.markdown a')) {
      expect(a.getAttribute('href') ?? '').not.toMatch(/^\s*javascript:/i)
    }
    for (const a of tl.querySelectorAll('a[href]')) expect(a.getAttribute('href')).toMatch(/^(https?:\/\/|\/)/)
    const docs = [...tl.querySelectorAll('.markdown a')].find((a) => a.textContent === 'docs')
    expect(docs?.getAttribute('href')).toBe('https://example.com/docs')
    expect(docs?.getAttribute('rel')).toBe('noopener noreferrer')
    expect((window as { __pwned?: unknown }).__pwned).toBeUndefined()
    w.unmount()
  })

  it('a pill shows its call in the tool panel (a sheet on phones; Escape closes it)', async () => {
    const w = await page()
    const panel = () => w.get('[data-test=shared-tool-panel]')
    // the latest call is shown; on a narrow screen the sheet is closed
    expect(panel().get('[data-test=tool-summary]').text()).toContain('ls -la')
    expect(panel().classes()).toContain('hidden')
    const pills = w.findAll('[data-test=tool-pill]')
    expect(pills[1]!.attributes('aria-current')).toBe('true')
    await pills[0]!.trigger('click')
    await flush()
    expect(panel().classes()).not.toContain('hidden')
    expect(panel().attributes('role')).toBe('dialog')
    expect(panel().get('[data-test=tool-summary]').text()).toContain('ironhand docs')
    expect(w.findAll('[data-test=tool-pill]')[0]!.attributes('aria-current')).toBe('true')
    // a replay asks nothing of the owner-only APIs (no shell polling, no token)
    expect(requests.every((r) => r.auth === null && /\/(shared|share)\b/.test(r.url))).toBe(true)
    await panel().trigger('keydown', { key: 'Escape' })
    expect(panel().classes()).toContain('hidden')
    w.unmount()
  })

  it('404: a friendly "not shared (any more)" state', async () => {
    respond = () => json(null, 404, 404, 'Session not found')
    const w = await page('gone')
    expect(w.get('[data-test=not-shared]').text()).toContain('This conversation is not shared (any more).')
    expect(w.find('[data-test=shared-timeline]').exists()).toBe(false)
    expect(w.find('[data-test=shared-error]').exists()).toBe(false)
    w.unmount()
  })

  it('429: says how long to wait, and tries again on request', async () => {
    respond = () => json({ retry_after: 7 }, 429, 429, 'Too many requests', { 'Retry-After': '7' })
    const w = await page()
    expect(w.get('[data-test=shared-error]').text()).toContain('Too many requests: try again in 7 s.')
    respond = (url) =>
      url === '/api/v1/sessions/shared/s1' ? json({ session_id: 's1', title: 'Later', status: 'running', events: [], is_shared: true }) : json([])
    await w.get('[data-test=shared-error] button').trigger('click')
    await flush()
    await flush()
    expect(w.get('[data-test=shared-title]').text()).toBe('Later')
    expect(w.text()).toContain('still running')
    w.unmount()
  })

  it('shows browser screenshots (thumbnails, the panel) and takeover notes, never the live view or its controls', async () => {
    const shot = '/api/v1/files/f7/download?signature=s&expires=4102444800'
    respond = (url) => {
      if (url === '/api/v1/sessions/shared/s1') {
        n = 0
        return json({
          session_id: 's1',
          title: 'Browsing',
          status: 'completed',
          is_shared: true,
          events: [
            ev('message', { role: 'user', content: 'Open the page', attachments: [] }),
            ev('tool', { tool_call_id: 'b1', name: 'browser', function: 'browser_navigate', args: { url: 'https://example.com/' }, status: 'called', content: { screenshot: shot } }),
            ev('takeover', { status: 'user' }),
            ev('takeover', { status: 'agent' }),
            ev('done', {}),
          ],
        })
      }
      if (url === '/api/v1/sessions/s1/share/files') return json([])
      return json(null, 404, 404, 'Not found')
    }
    const w = await page()
    expect(w.get('[data-test=tool-action]').text()).toBe('Navigating to example.com')
    expect(w.get('[data-test=screenshot-thumb] img').attributes('src')).toBe(shot)
    expect(w.get('[data-test=shared-tool-panel] [data-test=screenshot]').attributes('src')).toBe(shot)
    expect(w.findAll('[data-test=takeover-note]').map((x) => x.text())).toEqual([
      'The user took control of the browser here.',
      'The user handed the browser back to the agent.',
    ])
    for (const sel of ['browser-view', 'vnc-screen', 'take-over', 'hand-back', 'ask-take-over', 'takeover-banner']) {
      expect(w.find(`[data-test=${sel}]`).exists(), sel).toBe(false)
    }
    // the thumbnail enlarges here too
    await w.get('[data-test=screenshot-thumb]').trigger('click')
    await flush()
    expect(document.querySelector('[data-test=screenshot-dialog] img')!.getAttribute('src')).toBe(shot)
    expect(requests.some((r) => r.url.includes('/vnc') || r.url.includes('/takeover'))).toBe(false)
    w.unmount()
  })
})
