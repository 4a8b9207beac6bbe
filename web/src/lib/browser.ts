/**
 * The agent's browser in the timeline and the panel: what a browser call does (a sentence
 * for the pill, translated), which screenshot URLs we show, the screenshot that goes with the
 * selected call, and whether the agent's question suggests taking over the browser.
 */
import { safeFileUrl } from './files'
import type { TimelineItem } from './timeline'
import { displayUrl, type ToolItem } from './tools'

/** A translated description: `t(\`browser.action.${key}\`, values)`. */
export interface BrowserAction {
  key: string
  values: Record<string, string>
}

const MAX_TEXT = 40

function short(v: unknown): string {
  if (typeof v !== 'string') return ''
  const one = v.replace(/\s+/g, ' ').trim()
  return one.length > MAX_TEXT ? `${one.slice(0, MAX_TEXT - 1)}…` : one
}

/** A whole number given as a number or digits ("3"); '' otherwise. */
function int(v: unknown): string {
  if (typeof v === 'number' && Number.isFinite(v)) return String(Math.round(v))
  if (typeof v === 'string' && /^-?\d+(\.\d+)?$/.test(v.trim())) return String(Math.round(Number(v)))
  return ''
}

/** Where a call points at: element `index`, or the coordinates, or nothing. */
function target(a: Record<string, unknown>): { how: 'Index' | 'At' | ''; values: Record<string, string> } {
  const index = int(a.index)
  if (index) return { how: 'Index', values: { index } }
  const x = int(a.coordinate_x)
  const y = int(a.coordinate_y)
  if (x && y) return { how: 'At', values: { x, y } }
  return { how: '', values: {} }
}

/** The sentence for a browser call ("Navigating to example.com"), or null for other calls. */
export function browserAction(item: Pick<ToolItem, 'name' | 'function' | 'args'>): BrowserAction | null {
  if (item.name !== 'browser') return null
  const a = item.args ?? {}
  const url = (v: unknown) => (typeof v === 'string' && v ? short(displayUrl(v)) : '')
  switch (item.function) {
    case 'browser_view':
      return { key: 'view', values: {} }
    case 'browser_navigate':
      return url(a.url) ? { key: 'navigate', values: { url: url(a.url) } } : { key: 'navigateNowhere', values: {} }
    case 'browser_restart':
      return url(a.url) ? { key: 'restart', values: { url: url(a.url) } } : { key: 'restartNowhere', values: {} }
    case 'browser_click': {
      const t = target(a)
      return { key: `click${t.how}`, values: t.values }
    }
    case 'browser_input': {
      const t = target(a)
      return { key: `input${t.how}`, values: { ...t.values, text: short(a.text) } }
    }
    case 'browser_move_mouse': {
      const t = target(a)
      return t.how === 'At' ? { key: 'moveMouse', values: t.values } : { key: 'moveMouseNowhere', values: {} }
    }
    case 'browser_press_key':
      return { key: 'pressKey', values: { key: short(a.key) } }
    case 'browser_select_option':
      return { key: 'selectOption', values: { index: int(a.index), option: int(a.option) || short(a.option) } }
    case 'browser_scroll_up':
      return { key: a.to_top === true ? 'scrollTop' : 'scrollUp', values: {} }
    case 'browser_scroll_down':
      return { key: a.to_bottom === true ? 'scrollBottom' : 'scrollDown', values: {} }
    case 'browser_console_exec':
      return { key: 'consoleExec', values: {} }
    case 'browser_console_view':
      return { key: 'consoleView', values: {} }
    default:
      return null
  }
}

/** Every key `browserAction` can answer (the locales must have them all). */
export const BROWSER_ACTION_KEYS = [
  'view',
  'navigate',
  'navigateNowhere',
  'restart',
  'restartNowhere',
  'click',
  'clickIndex',
  'clickAt',
  'input',
  'inputIndex',
  'inputAt',
  'moveMouse',
  'moveMouseNowhere',
  'pressKey',
  'selectOption',
  'scrollUp',
  'scrollTop',
  'scrollDown',
  'scrollBottom',
  'consoleExec',
  'consoleView',
] as const

/**
 * A screenshot URL we put in `src`: a file of ours (`/api/v1/files/…` on this origin, relative
 * or absolute) or an https image. Model-controlled text must not make the browser request
 * arbitrary same-origin paths, nor javascript:/data:/blob: URLs.
 */
export function screenshotUrl(url: unknown, origin: string = globalThis.location?.origin ?? 'http://localhost'): string | undefined {
  const u = safeFileUrl(url, origin)
  if (!u) return undefined
  if (u.startsWith('/')) return u.startsWith('/api/v1/files/') ? u : undefined
  if (/^https:\/\//i.test(u)) return u
  try {
    const parsed = new URL(u)
    return parsed.origin === new URL(origin).origin && parsed.pathname.startsWith('/api/v1/files/') ? u : undefined
  } catch {
    return undefined
  }
}

/** The screenshot of a browser call (`content.screenshot` on `called`), if it has a usable one. */
export function toolScreenshot(item: Pick<ToolItem, 'name' | 'content'>): string | undefined {
  if (item.name !== 'browser' || !item.content) return undefined
  return screenshotUrl((item.content as Record<string, unknown>).screenshot)
}

/**
 * The screenshot that goes with the selected call (`selected`, or the latest call when null
 * or unknown): its own, or else that of the last browser call before it. Null when there is
 * none yet.
 */
export function screenshotFor(tools: ToolItem[], selected: string | null): { item: ToolItem; url: string } | null {
  let i = selected === null ? -1 : tools.findIndex((x) => x.toolCallId === selected)
  if (i < 0) i = tools.length - 1
  for (; i >= 0; i--) {
    const item = tools[i]!
    const url = toolScreenshot(item)
    if (url) return { item, url }
  }
  return null
}

/** True for `message_ask_user` with `suggest_user_takeover: "browser"`. */
export function suggestsTakeover(item: TimelineItem): boolean {
  return (
    item.kind === 'tool' &&
    item.function === 'message_ask_user' &&
    item.args.suggest_user_takeover === 'browser'
  )
}

/**
 * Whether the question a `wait` (at `waitIndex` of `items`) waits on suggested taking over
 * the browser: the last tool call before it, within the same turn, is such an ask.
 */
export function waitSuggestsTakeover(items: TimelineItem[], waitIndex: number): boolean {
  for (let i = waitIndex - 1; i >= 0; i--) {
    const it = items[i]!
    if (it.kind === 'tool') return suggestsTakeover(it)
    if ((it.kind === 'message' && it.role === 'user') || it.kind === 'wait' || it.kind === 'done') return false
  }
  return false
}
