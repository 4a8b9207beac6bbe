import { describe, expect, it } from 'vitest'
import {
  BROWSER_ACTION_KEYS,
  browserAction,
  screenshotFor,
  screenshotUrl,
  suggestsTakeover,
  toolScreenshot,
  waitSuggestsTakeover,
} from '@/lib/browser'
import { applyEvent, applyEvents, createTimeline, type SseEvent, type TimelineItem } from '@/lib/timeline'
import type { ToolItem } from '@/lib/tools'
import { vncWebSocketUrl } from '@/lib/vnc'
import { i18n } from '@/i18n'
import en from '@/locales/en'
import zhCN from '@/locales/zh-CN'
import ar from '@/locales/ar'

let n = 0
const ev = (event: string, data: Record<string, unknown> = {}, id?: string): SseEvent => ({
  event,
  data: { event_id: id ?? `e${String(++n).padStart(6, '0')}`, timestamp: 1700000000 + n, ...data },
})

function browserTool(id: string, fn: string, args: Record<string, unknown> = {}, screenshot?: unknown): ToolItem {
  return {
    kind: 'tool',
    key: id,
    toolCallId: id,
    name: 'browser',
    function: fn,
    args,
    status: screenshot === undefined ? 'calling' : 'called',
    content: screenshot === undefined ? null : ({ screenshot } as never),
    timestamp: 1,
  }
}
const shellTool = (id: string): ToolItem => ({
  kind: 'tool',
  key: id,
  toolCallId: id,
  name: 'shell',
  function: 'shell_exec',
  args: { command: 'ls' },
  status: 'called',
  content: null,
  timestamp: 1,
})
const SHOT = (f: string) => `/api/v1/files/${f}/download?signature=s&expires=4102444800`

describe('takeover state from the timeline', () => {
  it('is the agent until a takeover event, then follows the latest one', () => {
    const t = createTimeline()
    expect(t.control).toBe('agent')
    applyEvent(t, ev('takeover', { status: 'user' }))
    expect(t.control).toBe('user')
    applyEvent(t, ev('tool', { tool_call_id: 'c1', name: 'browser', function: 'browser_view', args: {}, status: 'calling' }))
    expect(t.control).toBe('user')
    applyEvent(t, ev('takeover', { status: 'agent' }))
    expect(t.control).toBe('agent')
    // each one is a row of the timeline
    expect(t.items.filter((i) => i.kind === 'takeover').map((i) => i.kind === 'takeover' && i.status)).toEqual(['user', 'agent'])
  })

  it('is right after a reload (history replayed) and ignores replays and unknown statuses', () => {
    const history = [ev('message', { role: 'user', content: 'go', attachments: [] }), ev('takeover', { status: 'user' }, 'h2'), ev('wait')]
    const t = applyEvents(createTimeline(), history)
    expect(t.control).toBe('user')
    expect(t.run).toBe('waiting')
    // the same events again (the stream replays after a reconnect): nothing changes
    applyEvents(t, history)
    expect(t.items.filter((i) => i.kind === 'takeover')).toHaveLength(1)
    // a later version's status changes nothing
    applyEvent(t, ev('takeover', { status: 'someone-else' }))
    expect(t.control).toBe('user')
    expect(t.items.filter((i) => i.kind === 'takeover')).toHaveLength(1)
    applyEvent(t, ev('takeover', { status: 'agent' }))
    expect(t.control).toBe('agent')
  })
})

describe('screenshots of browser calls', () => {
  it('takes a signed file URL of ours, relative or absolute on this origin, or https', () => {
    const origin = 'http://localhost:3000'
    expect(screenshotUrl(SHOT('f1'), origin)).toBe(SHOT('f1'))
    expect(screenshotUrl(`http://localhost:3000${SHOT('f1')}`, origin)).toBe(`http://localhost:3000${SHOT('f1')}`)
    expect(screenshotUrl('https://cdn.example.com/shot.jpg', origin)).toBe('https://cdn.example.com/shot.jpg')
    for (const bad of [
      'javascript:alert(1)',
      'data:image/svg+xml,<svg onload=alert(1)>',
      'blob:http://localhost:3000/x',
      '//evil.example/a.jpg',
      'relative.jpg',
      '/api/v1/auth/logout',
      'http://evil.example/api/v1/files/f1/download',
      'http://localhost:3000/api/v1/auth/me',
      ' /api/v1/files/f1',
      42,
      null,
    ]) {
      expect(screenshotUrl(bad, origin), String(bad)).toBeUndefined()
    }
  })

  it('comes from content.screenshot of a called browser call only', () => {
    expect(toolScreenshot(browserTool('a', 'browser_navigate', { url: 'https://example.com' }, SHOT('f1')))).toBe(SHOT('f1'))
    // the call failed before a page existed: no content, or content without a screenshot
    expect(toolScreenshot(browserTool('b', 'browser_view'))).toBeUndefined()
    expect(toolScreenshot({ ...browserTool('c', 'browser_view', {}, SHOT('x')), content: {} })).toBeUndefined()
    // another group's "screenshot" is not one
    expect(toolScreenshot({ ...shellTool('s'), content: { screenshot: SHOT('f9') } })).toBeUndefined()
  })

  it('for the selected call: its own, else the last browser call before it', () => {
    const tools = [
      browserTool('b1', 'browser_navigate', { url: 'https://a.example' }, SHOT('f1')),
      shellTool('s1'),
      browserTool('b2', 'browser_click', { index: 2 }, SHOT('f2')),
      browserTool('b3', 'browser_view'), // still calling: no screenshot yet
      shellTool('s2'),
    ]
    expect(screenshotFor(tools, null)?.url).toBe(SHOT('f2'))
    expect(screenshotFor(tools, 's2')?.item.toolCallId).toBe('b2')
    expect(screenshotFor(tools, 's1')?.url).toBe(SHOT('f1'))
    expect(screenshotFor(tools, 'b1')?.url).toBe(SHOT('f1'))
    expect(screenshotFor(tools, 'gone')?.url).toBe(SHOT('f2'))
    expect(screenshotFor([shellTool('s')], null)).toBeNull()
    expect(screenshotFor([], null)).toBeNull()
  })
})

describe('browser calls in words', () => {
  const say = (fn: string, args: Record<string, unknown> = {}) => {
    const a = browserAction(browserTool('x', fn, args))
    return a ? (i18n.global.t(`browser.action.${a.key}`, a.values) as string) : null
  }

  it('describes every browser function of the contract', () => {
    i18n.global.locale.value = 'en'
    expect(say('browser_navigate', { url: 'https://example.com/' })).toBe('Navigating to example.com')
    expect(say('browser_navigate', { url: 'http://127.0.0.1:8765/docs/a' })).toBe('Navigating to 127.0.0.1:8765/docs/a')
    expect(say('browser_navigate', {})).toBe('Navigating')
    expect(say('browser_restart', { url: 'https://example.com' })).toBe('Restarting the browser at example.com')
    expect(say('browser_view')).toBe('Looking at the page')
    expect(say('browser_click', { index: 3 })).toBe('Clicking element 3')
    expect(say('browser_click', { index: '3' })).toBe('Clicking element 3')
    expect(say('browser_click', { coordinate_x: 120.4, coordinate_y: 80 })).toBe('Clicking at (120, 80)')
    expect(say('browser_click', {})).toBe('Clicking')
    expect(say('browser_input', { text: 'hello', press_enter: true, index: 1 })).toBe('Typing “hello” into element 1')
    expect(say('browser_input', { text: 'hi', coordinate_x: 1, coordinate_y: 2 })).toBe('Typing “hi” at (1, 2)')
    expect(say('browser_input', { text: 'x'.repeat(100) })).toBe(`Typing “${'x'.repeat(39)}…”`)
    expect(say('browser_move_mouse', { coordinate_x: 5, coordinate_y: 6 })).toBe('Moving the mouse to (5, 6)')
    expect(say('browser_press_key', { key: 'Enter' })).toBe('Pressing Enter')
    expect(say('browser_select_option', { index: 4, option: 2 })).toBe('Choosing option 2 of element 4')
    expect(say('browser_scroll_up')).toBe('Scrolling up')
    expect(say('browser_scroll_up', { to_top: true })).toBe('Scrolling to the top')
    expect(say('browser_scroll_down')).toBe('Scrolling down')
    expect(say('browser_scroll_down', { to_bottom: true })).toBe('Scrolling to the bottom')
    expect(say('browser_console_exec', { javascript: 'alert(1)' })).toBe('Running JavaScript in the page')
    expect(say('browser_console_view', { max_lines: 10 })).toBe('Reading the browser console')
    // unknown functions and other groups: no sentence (the pill shows the function name)
    expect(say('browser_teleport')).toBeNull()
    expect(browserAction(shellTool('s'))).toBeNull()
  })

  it('model text stays text (no markup, no linked-message syntax)', () => {
    i18n.global.locale.value = 'en'
    expect(say('browser_input', { text: '<b onclick=x()> @:app.name {x}' })).toBe('Typing “<b onclick=x()> @:app.name {x}”')
  })
})

describe('the question that suggests taking over', () => {
  const ask = (suggest: unknown): TimelineItem => ({
    kind: 'tool',
    key: 'k',
    toolCallId: 'ask',
    name: 'message',
    function: 'message_ask_user',
    args: { text: 'Log in, please', suggest_user_takeover: suggest },
    status: 'called',
    content: null,
    timestamp: 1,
  })
  const said: TimelineItem = { kind: 'message', key: 'm', role: 'assistant', content: 'Log in, please', attachments: [], streaming: false, timestamp: 1 }
  const wait: TimelineItem = { kind: 'wait', key: 'w', timestamp: 1 }

  it('is message_ask_user with suggest_user_takeover: browser, right before the wait', () => {
    expect(suggestsTakeover(ask('browser'))).toBe(true)
    expect(suggestsTakeover(ask('none'))).toBe(false)
    expect(suggestsTakeover(ask(undefined))).toBe(false)
    expect(waitSuggestsTakeover([ask('browser'), said, wait], 2)).toBe(true)
    expect(waitSuggestsTakeover([ask('none'), said, wait], 2)).toBe(false)
    // an older ask of an earlier turn does not count
    const user: TimelineItem = { ...said, key: 'u', role: 'user' }
    expect(waitSuggestsTakeover([ask('browser'), said, user, said, wait], 4)).toBe(false)
  })
})

describe('signed VNC URL → WebSocket URL', () => {
  const http = { protocol: 'http:', host: 'localhost:8000' }
  const https = { protocol: 'https:', host: 'app.example.com' }
  const path = '/api/v1/sessions/s1/vnc?signature=abc%2B&expires=4102444800'

  it('makes a path absolute on this host: ws under http, wss under https', () => {
    expect(vncWebSocketUrl(path, http)).toBe(`ws://localhost:8000${path}`)
    expect(vncWebSocketUrl(path, https)).toBe(`wss://app.example.com${path}`)
  })

  it('swaps the scheme of an absolute URL, never downgrading an https page', () => {
    expect(vncWebSocketUrl(`http://api.example.com${path}`, http)).toBe(`ws://api.example.com${path}`)
    expect(vncWebSocketUrl(`http://api.example.com${path}`, https)).toBe(`wss://api.example.com${path}`)
    expect(vncWebSocketUrl(`https://api.example.com${path}`, http)).toBe(`wss://api.example.com${path}`)
    expect(vncWebSocketUrl(`wss://api.example.com${path}`, http)).toBe(`wss://api.example.com${path}`)
  })

  it('refuses anything else', () => {
    for (const bad of ['', 'javascript:alert(1)', '//evil.example/vnc', 'vnc?x=1', 'ftp://x/vnc', ' /api/v1/x', '/a\\b', 42, null, undefined]) {
      expect(vncWebSocketUrl(bad, http), String(bad)).toBeUndefined()
    }
  })
})

describe('locales', () => {
  /** every leaf key, as "a.b.c" */
  function keys(o: Record<string, unknown>, prefix = ''): string[] {
    return Object.entries(o).flatMap(([k, v]) =>
      v && typeof v === 'object' ? keys(v as Record<string, unknown>, `${prefix}${k}.`) : [`${prefix}${k}`],
    )
  }

  it('have the same keys in en, zh-CN and ar, all non-empty', () => {
    const want = keys(en).sort()
    for (const [name, messages] of [['zh-CN', zhCN], ['ar', ar]] as const) {
      expect(keys(messages).sort(), name).toEqual(want)
    }
    for (const m of [en, zhCN, ar]) {
      for (const k of keys(m)) {
        const v = k.split('.').reduce<unknown>((o, p) => (o as Record<string, unknown>)[p], m)
        expect(typeof v === 'string' && v.trim().length > 0, k).toBe(true)
      }
    }
  })

  it('have every browser sentence and state, with the same placeholders', () => {
    const placeholders = (s: string) => [...s.matchAll(/\{(\w+)\}/g)].map((x) => x[1]).sort()
    for (const key of BROWSER_ACTION_KEYS) {
      const base = en.browser.action[key]
      expect(base, key).toBeTruthy()
      for (const m of [zhCN, ar]) expect(placeholders(m.browser.action[key]), key).toEqual(placeholders(base))
    }
    for (const locale of ['en', 'zh-CN', 'ar'] as const) {
      i18n.global.locale.value = locale
      for (const k of ['connecting', 'live', 'notRunning', 'disconnected', 'screenshot']) {
        expect(i18n.global.te(`browser.state.${k}`), `${locale} ${k}`).toBe(true)
      }
      for (const k of ['takeOver', 'handBack', 'youControl', 'notRunning', 'disconnected', 'retry', 'enlarge', 'tookOver', 'handedBack']) {
        expect(i18n.global.te(`browser.${k}`), `${locale} ${k}`).toBe(true)
      }
      expect(i18n.global.te('panel.browser'), locale).toBe(true)
    }
    i18n.global.locale.value = 'en'
  })
})
