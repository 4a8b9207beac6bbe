import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { clearTokens, setFetch, setTokens } from '@/api/client'
import BrowserView from '@/components/BrowserView.vue'
import type { BrowserControl } from '@/lib/timeline'
import type { ToolItem } from '@/lib/tools'
import { useToasts } from '@/stores/toast'
import { FakeRfb, useFakeRfb } from './fake-rfb'
import { freshPinia, mountWith } from './helpers'

const json = (data: unknown, status = 200, code = 0, msg = 'success') =>
  new Response(JSON.stringify({ code, msg, data }), { status, headers: { 'Content-Type': 'application/json' } })

async function until(cond: () => boolean, ms = 3000) {
  const t0 = Date.now()
  while (!cond()) {
    if (Date.now() - t0 > ms) throw new Error('timed out')
    await new Promise((r) => setTimeout(r, 5))
  }
}

const SHOT = (f: string) => `/api/v1/files/${f}/download?signature=s&expires=4102444800`
function browserTool(id: string, fn: string, args: Record<string, unknown> = {}, screenshot?: string): ToolItem {
  return {
    kind: 'tool',
    key: id,
    toolCallId: id,
    name: 'browser',
    function: fn,
    args,
    status: screenshot ? 'called' : 'calling',
    content: screenshot ? { screenshot } : null,
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

let requests: { url: string; body: unknown }[] = []
/** answers of POST /vnc/signed-url, in order (the last one repeats) */
let vncAnswers: (() => Response)[] = []
const signed = (n: number) => json({ signed_url: `/api/v1/sessions/s1/vnc?signature=sig${n}&expires=4102444800`, expires_in: 120 })
const vncRequests = () => requests.filter((r) => r.url.endsWith('/vnc/signed-url'))

beforeEach(() => {
  useFakeRfb()
  setTokens('tok', 'r')
  requests = []
  vncAnswers = [() => signed(1), () => signed(2), () => signed(3), () => signed(4)]
  setFetch((async (url: string, init: RequestInit = {}) => {
    requests.push({ url, body: init.body ? JSON.parse(String(init.body)) : undefined })
    if (url === '/api/v1/sessions/s1/vnc/signed-url') {
      const next = vncAnswers.length > 1 ? vncAnswers.shift()! : vncAnswers[0]!
      return next()
    }
    return json(null, 404, 404, 'Not found')
  }) as unknown as typeof fetch)
})
afterEach(() => {
  clearTokens()
  document.body.innerHTML = ''
})

function view(props: { tools?: ToolItem[]; selected?: string | null; liveAllowed?: boolean; control?: BrowserControl; active?: boolean; pending?: boolean } = {}) {
  return mountWith(
    BrowserView,
    {
      props: { sessionId: 's1', tools: [], selected: null, liveAllowed: true, control: 'agent' as BrowserControl, active: true, ...props },
      attachTo: document.body,
    },
    freshPinia(),
  )
}

describe('the live browser view', () => {
  it('connects with a fresh signed URL, view-only and scaled; taking over makes it interactive', async () => {
    const w = view()
    await until(() => FakeRfb.all.length === 1)
    expect(vncRequests()).toHaveLength(1)
    expect(vncRequests()[0]!.body).toEqual({ expire_minutes: 2 })
    const rfb = FakeRfb.last()
    // the signed path becomes a WebSocket URL on this page's host
    expect(rfb.url).toBe(`ws://${location.host}/api/v1/sessions/s1/vnc?signature=sig1&expires=4102444800`)
    expect(rfb.options).toEqual({ shared: true, wsProtocols: ['binary'] })
    expect(rfb.target).toBe(w.get('[data-test=vnc-screen]').element)
    expect(rfb.scaleViewport).toBe(true)
    expect(rfb.resizeSession).toBe(false)
    expect(rfb.viewOnly).toBe(true)
    expect(rfb.focusOnClick).toBe(false)
    expect(w.get('[data-test=browser-state]').text()).toBe('Connecting…')
    expect(w.get('[data-test=browser-overlay]').text()).toContain('Connecting to the browser…')
    expect(w.get('[data-test=take-over]').attributes('disabled')).toBeDefined()

    rfb.connect()
    await w.vm.$nextTick()
    expect(w.get('[data-test=browser-state]').text()).toBe('Live')
    expect(w.find('[data-test=browser-overlay]').exists()).toBe(false)
    expect(w.get('[data-test=vnc-screen]').find('canvas').exists()).toBe(true)
    expect(w.get('[data-test=vnc-screen]').attributes('data-view-only')).toBe('true')
    expect(w.find('[data-test=takeover-banner]').exists()).toBe(false)
    const take = w.get('[data-test=take-over]')
    expect(take.attributes('disabled')).toBeUndefined()
    await take.trigger('click')
    expect(w.emitted('takeover')).toEqual([['take']])

    // the takeover event said the user holds the browser: interactive, with the banner
    await w.setProps({ control: 'user' })
    expect(rfb.viewOnly).toBe(false)
    expect(rfb.focusOnClick).toBe(true)
    expect(rfb.focused).toBe(1)
    expect(w.get('[data-test=vnc-screen]').attributes('data-view-only')).toBe('false')
    expect(w.find('[data-test=take-over]').exists()).toBe(false)
    const banner = w.get('[data-test=takeover-banner]')
    expect(banner.attributes('role')).toBe('status')
    expect(banner.text()).toContain('The agent is paused and waits until you hand it back.')
    await banner.get('[data-test=hand-back]').trigger('click')
    expect(w.emitted('takeover')!.at(-1)).toEqual(['hand_back'])
    await w.setProps({ pending: true })
    expect(w.get('[data-test=hand-back]').attributes('disabled')).toBeDefined()

    // handed back: view-only again, still the same connection
    await w.setProps({ control: 'agent', pending: false })
    expect(rfb.viewOnly).toBe(true)
    expect(w.find('[data-test=takeover-banner]').exists()).toBe(false)
    expect(FakeRfb.all).toHaveLength(1)
    expect(rfb.closed).toBe(false)

    w.unmount()
    expect(rfb.closed).toBe(true)
  })

  it('409: "not running yet"; the agent\'s next browser call connects with a new signed URL', async () => {
    vncAnswers = [() => json(null, 409, 409, 'No browser is running for this session yet.'), () => signed(2)]
    const w = view()
    await until(() => w.find('[data-test=browser-not-running]').exists())
    expect(w.get('[data-test=browser-state]').text()).toBe('Not running')
    expect(w.text()).toContain('The browser is not running yet.')
    expect(FakeRfb.all).toHaveLength(0)
    // a 409 is a state, not an error
    expect(useToasts().toasts).toHaveLength(0)

    await w.setProps({ tools: [browserTool('b1', 'browser_navigate', { url: 'https://example.com' })] })
    await until(() => FakeRfb.all.length === 1)
    expect(vncRequests()).toHaveLength(2)
    expect(FakeRfb.last().url).toContain('signature=sig2')

    // the socket closes before the desktop came: no browser behind it
    FakeRfb.last().drop()
    await w.vm.$nextTick()
    expect(w.find('[data-test=browser-not-running]').exists()).toBe(true)
    await w.get('[data-test=browser-retry]').trigger('click')
    await until(() => FakeRfb.all.length === 2)
    expect(vncRequests()).toHaveLength(3)
    w.unmount()
  })

  it('a dropped connection reconnects once by itself, then offers Retry', async () => {
    const w = view()
    await until(() => FakeRfb.all.length === 1)
    FakeRfb.last().connect()
    FakeRfb.last().drop()
    await w.vm.$nextTick()
    expect(w.get('[data-test=browser-state]').text()).toBe('Connecting…')
    await until(() => FakeRfb.all.length === 2)
    // every connection has its own signed URL (they expire)
    expect(FakeRfb.last().url).toContain('signature=sig2')
    FakeRfb.last().connect()
    FakeRfb.last().drop()
    await w.vm.$nextTick()
    expect(w.get('[data-test=browser-disconnected]').text()).toBe('Disconnected from the browser.')
    expect(w.get('[data-test=browser-state]').text()).toBe('Disconnected')
    await new Promise((r) => setTimeout(r, 1200))
    expect(FakeRfb.all).toHaveLength(2)
    await w.get('[data-test=browser-retry]').trigger('click')
    await until(() => FakeRfb.all.length === 3)
    expect(FakeRfb.last().url).toContain('signature=sig3')
    w.unmount()
  })

  it('a failed signed-URL request is a toast, and the view offers Retry', async () => {
    vncAnswers = [() => json(null, 500, 500, 'The sandbox is not available: boom')]
    const w = view()
    await until(() => w.find('[data-test=browser-disconnected]').exists())
    expect(useToasts().toasts.map((t) => t.text)).toEqual(['The sandbox is not available: boom'])
    expect(FakeRfb.all).toHaveLength(0)
    w.unmount()
  })

  it('connects only while the panel is shown, and lets go when it is hidden', async () => {
    const w = view({ active: false })
    await new Promise((r) => setTimeout(r, 30))
    expect(vncRequests()).toHaveLength(0)
    await w.setProps({ active: true })
    await until(() => FakeRfb.all.length === 1)
    await w.setProps({ active: false })
    expect(FakeRfb.last().closed).toBe(true)
    w.unmount()
  })

  it('without a live view: the screenshot of the selected call, enlarged in a dialog; no take-over', async () => {
    const tools = [
      browserTool('b1', 'browser_navigate', { url: 'https://example.com/' }, SHOT('f1')),
      shellTool('s1'),
      browserTool('b2', 'browser_click', { index: 3 }, SHOT('f2')),
    ]
    const w = view({ liveAllowed: false, tools, selected: 's1' })
    await new Promise((r) => setTimeout(r, 30))
    expect(vncRequests()).toHaveLength(0)
    expect(FakeRfb.all).toHaveLength(0)
    expect(w.find('[data-test=vnc-screen]').exists()).toBe(false)
    expect(w.find('[data-test=take-over]').exists()).toBe(false)
    expect(w.get('[data-test=browser-state]').attributes('data-state')).toBe('screenshot')
    // the shell call shows the screenshot of the browser call before it
    expect(w.get('[data-test=browser-shot]').attributes('src')).toBe(SHOT('f1'))
    expect(w.get('[data-test=browser-shot-caption]').text()).toBe('Navigating to example.com')
    await w.setProps({ selected: null })
    expect(w.get('[data-test=browser-shot]').attributes('src')).toBe(SHOT('f2'))
    expect(w.get('[data-test=browser-shot-caption]').text()).toBe('Clicking element 3')

    const enlarge = w.get('[data-test=browser-shot-enlarge]')
    ;(enlarge.element as HTMLElement).focus()
    await enlarge.trigger('click')
    const dialog = document.querySelector<HTMLElement>('[data-test=screenshot-dialog]')!
    expect(dialog.getAttribute('role')).toBe('dialog')
    expect(dialog.getAttribute('aria-modal')).toBe('true')
    expect(dialog.getAttribute('aria-label')).toBe('Screenshot: Clicking element 3')
    expect(dialog.querySelector('img')!.getAttribute('src')).toBe(SHOT('f2'))
    await until(() => document.activeElement === dialog.querySelector('[data-test=screenshot-close]'))
    dialog.dispatchEvent(new KeyboardEvent('keydown', { key: 'Escape', bubbles: true }))
    await until(() => !document.querySelector('[data-test=screenshot-dialog]'))
    expect(document.activeElement).toBe(enlarge.element)

    // an expired link or a missing file: a sentence instead of a broken picture
    await w.get('[data-test=browser-shot]').trigger('error')
    expect(w.get('[data-test=browser-no-shot]').text()).toBe('The screenshot is no longer available.')
    w.unmount()
  })

  it('no screenshot yet: says so', () => {
    const w = view({ liveAllowed: false, tools: [shellTool('s1'), browserTool('b1', 'browser_view')] })
    expect(w.get('[data-test=browser-no-shot]').text()).toContain('No screenshot yet')
    w.unmount()
  })
})
