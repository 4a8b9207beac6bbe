import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { defineComponent, h, type PropType } from 'vue'
import { clearTokens, setFetch, setTokens } from '@/api/client'
import ToolPanel from '@/components/ToolPanel.vue'
import ToolShellView from '@/components/ToolShellView.vue'
import type { ConsoleLine } from '@/lib/timeline'
import { consoleAnsi, consoleText, safeHttpUrl, stripAnsi, type ToolItem } from '@/lib/tools'
import { useToasts } from '@/stores/toast'
import { flush, freshPinia, mountWith } from './helpers'

/** xterm needs a real browser: tests see the lines it was given instead. */
const TerminalStub = defineComponent({
  name: 'TerminalView',
  props: { lines: { type: Array as PropType<ConsoleLine[]>, required: true }, label: String },
  setup: (p) => () => h('pre', { 'data-test': 'terminal-stub' }, consoleText(p.lines)),
})
const stubs = { TerminalView: TerminalStub }

function tool(id: string, over: Partial<ToolItem> = {}): ToolItem {
  return {
    kind: 'tool',
    key: id,
    toolCallId: id,
    name: 'file',
    function: 'file_read',
    args: { file: `/home/ubuntu/${id}.txt` },
    status: 'called',
    content: { content: `content of ${id}` },
    timestamp: 1,
    ...over,
  }
}

const json = (data: unknown, status = 200, code = 0, msg = 'success') =>
  new Response(JSON.stringify({ code, msg, data }), { status, headers: { 'Content-Type': 'application/json' } })

async function until(cond: () => boolean, ms = 3000) {
  const t0 = Date.now()
  while (!cond()) {
    if (Date.now() - t0 > ms) throw new Error('timed out')
    await new Promise((r) => setTimeout(r, 5))
  }
}

beforeEach(() => setTokens('tok', 'r'))
afterEach(() => {
  clearTokens()
  document.body.innerHTML = ''
})

function panel(props: { tools: ToolItem[]; selected?: string | null; live?: boolean; active?: boolean }) {
  return mountWith(ToolPanel, {
    props: { selected: null, live: false, active: false, sessionId: 's1', ...props },
    global: { stubs },
  })
}

describe('tool panel', () => {
  it('follows the live call, and offers "Jump to live" after an older one is chosen', async () => {
    const w = panel({ tools: [tool('a'), tool('b', { status: 'calling', content: null })], live: true })
    // following: the latest call
    expect(w.get('[data-test=file-path]').text()).toBe('/home/ubuntu/b.txt')
    expect(w.get('[data-test=tool-status]').text()).toBe('Running')
    expect(w.find('[data-test=live-badge]').exists()).toBe(true)
    expect(w.find('[data-test=jump-to-live]').exists()).toBe(false)
    expect(w.get('[data-test=tool-position]').text()).toBe('2 of 2')

    // a new call arrives: the panel moves on to it
    await w.setProps({ tools: [tool('a'), tool('b'), tool('c', { status: 'calling', content: null })] })
    expect(w.get('[data-test=file-path]').text()).toBe('/home/ubuntu/c.txt')

    // the user goes back one call: following stops
    await w.get('[data-test=tool-prev]').trigger('click')
    expect(w.emitted('update:selected')!.at(-1)).toEqual(['b'])
    await w.setProps({ selected: 'b' })
    expect(w.get('[data-test=file-path]').text()).toBe('/home/ubuntu/b.txt')
    expect(w.get('[data-test=file-content]').text()).toBe('content of b')
    expect(w.find('[data-test=live-badge]').exists()).toBe(false)
    const jump = w.get('[data-test=jump-to-live]')
    expect(jump.text()).toBe('Jump to live')

    // more calls arrive: the chosen one stays
    await w.setProps({ tools: [tool('a'), tool('b'), tool('c'), tool('d', { status: 'calling', content: null })] })
    expect(w.get('[data-test=file-path]').text()).toBe('/home/ubuntu/b.txt')

    // back to following
    await jump.trigger('click')
    expect(w.emitted('update:selected')!.at(-1)).toEqual([null])
    await w.setProps({ selected: null })
    expect(w.get('[data-test=file-path]').text()).toBe('/home/ubuntu/d.txt')
    expect(w.find('[data-test=jump-to-live]').exists()).toBe(false)

    // "next" onto the last call means following again
    await w.setProps({ selected: 'c' })
    await w.get('[data-test=tool-next]').trigger('click')
    expect(w.emitted('update:selected')!.at(-1)).toEqual([null])
  })

  it('shows no "Jump to live" when the run is not live', async () => {
    const w = panel({ tools: [tool('a'), tool('b')], selected: 'a', live: false })
    expect(w.get('[data-test=file-path]').text()).toBe('/home/ubuntu/a.txt')
    expect(w.find('[data-test=jump-to-live]').exists()).toBe(false)
    expect(w.find('[data-test=live-badge]').exists()).toBe(false)
    expect(w.get('[data-test=tool-prev]').attributes('disabled')).toBeDefined()
  })

  it('an empty panel says what it is for', () => {
    const w = panel({ tools: [] })
    expect(w.text()).toContain('tool calls')
    expect(w.get('[data-test=tool-prev]').attributes('disabled')).toBeDefined()
    expect(w.get('[data-test=tool-next]').attributes('disabled')).toBeDefined()
  })

  it('search results: only http(s) links, opened without opener or referrer', () => {
    const results = [
      { title: 'Good', link: 'https://example.com/a?b=1', snippet: 'fine' },
      { title: 'Script', link: 'javascript:alert(1)', snippet: 's1' },
      { title: 'Data', link: 'data:text/html,<script>alert(1)</script>', snippet: 's2' },
      { title: 'Padded', link: ' javascript:alert(1)', snippet: 's3' },
      { title: 'Relative', link: '//evil.example/x', snippet: 's4' },
      { title: 'Vb', link: 'vbscript:msgbox', snippet: 's5' },
      { title: '<img src=x onerror=alert(1)>', link: 'http://plain.example', snippet: '<b>bold</b>' },
    ]
    const w = panel({
      tools: [tool('s', { name: 'search', function: 'info_search_web', args: { query: 'weather' }, content: { results } })],
    })
    const links = w.findAll('[data-test=search-results] a')
    expect(links.map((a) => a.attributes('href'))).toEqual(['https://example.com/a?b=1', 'http://plain.example/'])
    for (const a of links) {
      expect(a.attributes('target')).toBe('_blank')
      expect(a.attributes('rel')).toBe('noopener noreferrer')
    }
    // the refused ones are plain text
    const plain = w.findAll('[data-test=unsafe-result]').map((s) => s.text())
    expect(plain).toEqual(['Script', 'Data', 'Padded', 'Relative', 'Vb'])
    expect(w.html()).not.toContain('href="javascript')
    expect(w.html()).not.toContain('href="data')
    // markup in titles and snippets is text
    expect(w.find('[data-test=search-results] img').exists()).toBe(false)
    expect(w.find('[data-test=search-results] b').exists()).toBe(false)
    expect(w.text()).toContain('<img src=x onerror=alert(1)>')
    expect(w.text()).toContain('weather')
  })

  it('browser: screenshot only from http(s) or this origin; URL and title shown', () => {
    const browse = (screenshot: string, url: string) =>
      tool('b', { name: 'browser', function: 'browser_navigate', args: { url }, content: { screenshot, title: 'Example Domain' } as never })
    let w = panel({ tools: [browse('/api/v1/files/f1?expires=4102444800&signature=s', 'https://example.com/')] })
    expect(w.get('[data-test=screenshot]').attributes('src')).toBe('/api/v1/files/f1?expires=4102444800&signature=s')
    expect(w.get('[data-test=page-url]').attributes('href')).toBe('https://example.com/')
    expect(w.get('[data-test=page-url]').attributes('rel')).toBe('noopener noreferrer')
    expect(w.get('[data-test=page-title]').text()).toBe('Example Domain')
    w.unmount()

    for (const bad of ['javascript:alert(1)', 'data:image/svg+xml,<svg onload=alert(1)>', '//evil.example/a.png', 'relative.png']) {
      w = panel({ tools: [browse(bad, 'javascript:alert(2)')] })
      expect(w.find('[data-test=screenshot]').exists()).toBe(false)
      expect(w.text()).toContain('No screenshot.')
      // the page URL is not a link either
      expect(w.find('a[data-test=page-url]').exists()).toBe(false)
      expect(w.get('[data-test=page-url]').text()).toBe('javascript:alert(2)')
      w.unmount()
    }
  })

  it('file: name and content as text in a monospace view', () => {
    const w = panel({
      tools: [tool('f', { function: 'file_write', args: { file: '/home/ubuntu/x.html', content: '<script>alert(1)</script>' }, content: null })],
    })
    expect(w.get('[data-test=file-path]').text()).toBe('/home/ubuntu/x.html')
    const pre = w.get('[data-test=file-content]')
    expect(pre.element.tagName).toBe('PRE')
    expect(pre.classes()).toContain('font-mono')
    expect(pre.text()).toBe('<script>alert(1)</script>')
    expect(w.find('script').exists()).toBe(false)
  })

  it('shell: the console entries in the terminal', () => {
    const w = panel({
      tools: [
        tool('sh', {
          name: 'shell',
          function: 'shell_exec',
          args: { id: 'main', exec_dir: '/home/ubuntu', command: 'ls' },
          content: { console: [{ ps1: 'ubuntu@sandbox:~ $', command: 'ls', output: 'a.txt\nb.txt' }] },
        }),
      ],
    })
    expect(w.get('[data-test=terminal-stub]').text()).toBe('ubuntu@sandbox:~ $ ls\na.txt\nb.txt')
    expect(w.get('[data-test=tool-summary]').text()).toBe('shell_exec: ls')
  })
})

describe('shell live view', () => {
  let polls: Record<string, unknown>[] = []
  let answer: () => Response = () => json({ output: '', session_id: 'main', console: [] })

  beforeEach(() => {
    polls = []
    setFetch((async (url: string, init: RequestInit = {}) => {
      if (url === '/api/v1/sessions/s1/shell' && init.method === 'POST') {
        polls.push(JSON.parse(String(init.body)) as Record<string, unknown>)
        return answer()
      }
      return json(null, 404, 404, 'Not found')
    }) as unknown as typeof fetch)
  })

  const calling = (over: Partial<ToolItem> = {}) =>
    tool('sh', { name: 'shell', function: 'shell_exec', args: { id: 'main', exec_dir: '/', command: 'make' }, status: 'calling', content: null, ...over })

  function view(item: ToolItem, active = true) {
    const pinia = freshPinia()
    return mountWith(ToolShellView, { props: { sessionId: 's1', item, active, pollMs: 20 }, global: { stubs } }, pinia)
  }

  it('polls while the call runs and the panel is shown, then stops', async () => {
    let n = 0
    answer = () => json({ output: '', session_id: 'main', console: [{ ps1: '$', command: 'make', output: `step ${++n}` }] })
    const w = view(calling())
    // before any answer: the command
    expect(w.get('[data-test=terminal-stub]').text()).toBe('$ make')
    await until(() => polls.length >= 3)
    expect(polls[0]).toEqual({ session_id: 'main' })
    await until(() => /step \d/.test(w.get('[data-test=terminal-stub]').text()))

    // the panel closes: no more polls
    await w.setProps({ active: false })
    await flush()
    const paused = polls.length
    await new Promise((r) => setTimeout(r, 80))
    expect(polls.length).toBe(paused)

    // shown again: polling resumes; the call completes: polling stops, the event's console wins
    await w.setProps({ active: true })
    await until(() => polls.length > paused)
    await w.setProps({ item: calling({ status: 'called', content: { console: [{ ps1: '$', command: 'make', output: 'done' }] } }) })
    await flush()
    const ended = polls.length
    await new Promise((r) => setTimeout(r, 80))
    expect(polls.length).toBeLessThanOrEqual(ended + 1)
    expect(w.get('[data-test=terminal-stub]').text()).toBe('$ make\ndone')
    w.unmount()
  })

  it('never polls a finished call or a hidden panel', async () => {
    const w1 = view(calling({ status: 'called', content: { console: [] } }))
    const w2 = view(calling(), false)
    await new Promise((r) => setTimeout(r, 80))
    expect(polls).toHaveLength(0)
    w1.unmount()
    w2.unmount()
  })

  it('a failing poll is one toast, then no more polls', async () => {
    answer = () => json(null, 500, 500, 'The sandbox is not running.')
    const w = view(calling())
    await until(() => useToasts().toasts.length === 1)
    await new Promise((r) => setTimeout(r, 100))
    expect(polls).toHaveLength(1)
    expect(useToasts().toasts).toHaveLength(1)
    expect(useToasts().toasts[0]!.text).toBe('The sandbox is not running.')
    w.unmount()
  })

  it('stops polling when unmounted', async () => {
    const w = view(calling())
    await until(() => polls.length >= 1)
    w.unmount()
    const n = polls.length
    await new Promise((r) => setTimeout(r, 80))
    expect(polls.length).toBeLessThanOrEqual(n + 1)
  })
})

describe('tool helpers', () => {
  it('safeHttpUrl keeps absolute http(s) only', () => {
    expect(safeHttpUrl('https://a.example/x')).toBe('https://a.example/x')
    expect(safeHttpUrl('HTTP://A.example')).toBe('http://a.example/')
    for (const bad of ['javascript:alert(1)', 'data:text/html,x', '//a.example', '/local', ' https://a.example', 'https://a.example/\n', 'https:\\\\a.example', 42, null]) {
      expect(safeHttpUrl(bad)).toBeUndefined()
    }
  })

  it('terminal text: escape sequences removed for the plain view; the prompt cannot smuggle any', () => {
    expect(stripAnsi('\u001b[31mred\u001b[0m \u001b]8;;javascript:alert(1)\u0007click\u001b]8;;\u0007 ok\u0007')).toBe('red click ok')
    const ansi = consoleAnsi([{ ps1: 'p\u001b]8;;javascript:x\u0007$', command: 'ls\u001b[2J', output: 'a\nb' }])
    expect(ansi).toBe('\u001b[0m\u001b[32mp$\u001b[0m ls\r\na\r\nb\r\n\u001b[0m')
  })
})
