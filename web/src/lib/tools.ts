/**
 * Helpers for showing tool calls (the tool pills and the tool panel): what a call is about,
 * which links we follow, and terminal text made safe to show as plain text.
 */
import type { ConsoleLine, TimelineItem } from './timeline'

export type ToolItem = Extract<TimelineItem, { kind: 'tool' }>

/** The one argument that says what a call does (command, path, query, URL…), or ''. */
export function toolSummary(item: Pick<ToolItem, 'args'>): string {
  const a = item.args
  const pick = a.command ?? a.file ?? a.query ?? a.url ?? a.text ?? a.path ?? a.input ?? a.key
  return typeof pick === 'string' ? pick : ''
}

/**
 * A link we put in `href`: absolute http(s) only (no javascript:, data:, blob:, relative
 * paths, protocol-relative `//host`, or URLs with control characters / backslashes).
 */
export function safeHttpUrl(url: unknown): string | undefined {
  if (typeof url !== 'string' || !url || url.trim() !== url) return undefined
  if (/[\u0000-\u001f\u007f\\]/.test(url)) return undefined
  if (!/^https?:\/\//i.test(url)) return undefined
  try {
    const u = new URL(url)
    return u.protocol === 'http:' || u.protocol === 'https:' ? u.href : undefined
  } catch {
    return undefined
  }
}

/** "example.com/a/b" for showing a URL compactly (the URL itself when it does not parse). */
export function displayUrl(url: string): string {
  try {
    const u = new URL(url)
    const path = u.pathname === '/' ? '' : u.pathname
    return `${u.host}${path}`
  } catch {
    return url
  }
}

// CSI (ESC [ … final), OSC (ESC ] … BEL or ESC \), other two-byte escapes, C1 CSI.
// eslint-disable-next-line no-control-regex
const ANSI = /\u001b\[[0-?]*[ -/]*[@-~]|\u001b\][^\u0007\u001b]*(?:\u0007|\u001b\\)?|\u001b[@-Z\\-_]|\u009b[0-?]*[ -/]*[@-~]/g
// every other control character except tab and newline
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/g

/** Terminal output as plain text: escape sequences and control characters removed. */
export function stripAnsi(s: string): string {
  return s.replace(/\r\n/g, '\n').replace(ANSI, '').replace(/\r/g, '\n').replace(CONTROL, '')
}

/** The console entries as plain text (`ps1 command` then the output), for screen readers and fallbacks. */
export function consoleText(lines: ConsoleLine[]): string {
  return lines
    .map((l) => {
      const head = [l.ps1, l.command].filter((x) => typeof x === 'string' && x).join(' ')
      const out = typeof l.output === 'string' ? l.output : ''
      return stripAnsi(out ? `${head}\n${out.replace(/\n$/, '')}` : head)
    })
    .join('\n')
}

/**
 * The console entries as terminal input for xterm: the prompt in green, the command, then
 * the output. Output is written as is (xterm interprets escape sequences itself).
 */
export function consoleAnsi(lines: ConsoleLine[]): string {
  let s = ''
  for (const l of lines) {
    const ps1 = typeof l.ps1 === 'string' ? l.ps1 : ''
    const cmd = typeof l.command === 'string' ? l.command : ''
    const out = typeof l.output === 'string' ? l.output : ''
    // the prompt and command are one line: no escape sequence in them may survive
    s += `\u001b[0m\u001b[32m${stripAnsi(ps1).replace(/\n/g, ' ')}\u001b[0m ${stripAnsi(cmd).replace(/\n/g, ' ')}\r\n`
    if (out) s += out.replace(/\r?\n/g, '\r\n') + (out.endsWith('\n') ? '' : '\r\n')
    s += '\u001b[0m'
  }
  return s
}

/** Coerces a console list from an event or an answer (entries that are not objects dropped). */
export function toConsole(v: unknown): ConsoleLine[] {
  if (!Array.isArray(v)) return []
  return v
    .filter((x): x is Record<string, unknown> => !!x && typeof x === 'object')
    .map((x) => ({
      ps1: typeof x.ps1 === 'string' ? x.ps1 : undefined,
      command: typeof x.command === 'string' ? x.command : undefined,
      output: typeof x.output === 'string' ? x.output : undefined,
    }))
}

/** Icon name (see AppIcon) of a tool group. */
export function toolIcon(name: string): string {
  switch (name) {
    case 'shell':
      return 'terminal'
    case 'file':
      return 'file'
    case 'search':
      return 'search'
    case 'browser':
      return 'globe'
    case 'message':
      return 'message'
    case 'mcp':
      return 'plug'
    default:
      return 'puzzle'
  }
}
