/**
 * Connectors (MCP servers): the add/edit form as data, its checks (the server's rules, so a
 * mistake is caught before a request; the server's own refusal is still shown verbatim), the
 * `PUT` body with write-only secrets, and how an MCP tool call is named in the timeline.
 */
import type { McpServer, McpServerPut, McpTransport } from '@/api/mcp'

/**
 * Server names: 1–64 characters of `[A-Za-z0-9_-]` (the server also wants a letter or digit at
 * each end and no `__`: docs/api.md, Connectors).
 */
export const MCP_NAME_MAX = 64
export const MCP_NAME_RE = /^[A-Za-z0-9_-]{1,64}$/
/** Environment variable names (POSIX shell convention). */
export const ENV_KEY_RE = /^[A-Za-z_][A-Za-z0-9_]*$/
/** HTTP header names (RFC 9110 `token`). */
export const HEADER_KEY_RE = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/

/** One key/value row of the environment or headers. */
export interface SecretRow {
  /** stable id for `v-for` keys and element ids */
  id: number
  key: string
  /** typed by the user; never filled from the server (values are write-only) */
  value: string
  /** the key is stored on the server: an empty value keeps the stored one */
  stored: boolean
}

export interface McpForm {
  /** editing an existing server of the user (the name is then fixed) */
  editing: boolean
  name: string
  transport: McpTransport
  command: string
  /** one argument per line */
  args: string
  env: SecretRow[]
  url: string
  headers: SecretRow[]
  enabled: boolean
}

let rowId = 1
export function secretRow(key = '', stored = false): SecretRow {
  return { id: rowId++, key, value: '', stored }
}

export function emptyForm(): McpForm {
  return { editing: false, name: '', transport: 'stdio', command: '', args: '', env: [], url: '', headers: [], enabled: true }
}

/** The form for editing `s`: its stored keys with empty values ("unchanged"). */
export function formFromServer(s: McpServer): McpForm {
  return {
    editing: true,
    name: s.name,
    transport: s.transport,
    command: s.command ?? '',
    args: (s.args ?? []).join('\n'),
    env: (s.env_keys ?? []).map((k) => secretRow(k, true)),
    url: s.url ?? '',
    headers: (s.header_keys ?? []).map((k) => secretRow(k, true)),
    enabled: s.enabled,
  }
}

/** The arguments of the text box: one a line, surrounding spaces trimmed, blank lines ignored. */
export function parseArgs(text: string): string[] {
  return text
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l.length > 0)
}

/** An absolute http(s) URL (the server also refuses private and loopback addresses). */
export function isHttpUrl(s: string): boolean {
  if (!/^https?:\/\//i.test(s) || /[\s\u0000-\u001f\u007f\\]/.test(s)) return false
  try {
    const u = new URL(s)
    return (u.protocol === 'http:' || u.protocol === 'https:') && !!u.hostname
  } catch {
    return false
  }
}

export type McpFormErrorCode =
  | 'nameMissing'
  | 'nameInvalid'
  | 'nameTaken'
  | 'commandMissing'
  | 'urlMissing'
  | 'urlInvalid'
  | 'keyMissing'
  | 'keyInvalid'
  | 'keyDuplicate'
  | 'valueMissing'

export interface McpFormError {
  /** `name`, `command`, `url`, or `env.<row id>` / `headers.<row id>` (key), `…value` */
  field: string
  code: McpFormErrorCode
  /** the row's key, for the message */
  key?: string
}

function rowErrors(kind: 'env' | 'headers', rows: SecretRow[], keyRe: RegExp): McpFormError[] {
  const errors: McpFormError[] = []
  const seen = new Set<string>()
  for (const r of rows) {
    const key = r.key.trim()
    // a blank new row is simply ignored
    if (!key && !r.value && !r.stored) continue
    const field = `${kind}.${r.id}`
    if (!key) {
      errors.push({ field, code: 'keyMissing' })
      continue
    }
    if (!keyRe.test(key)) errors.push({ field, code: 'keyInvalid', key })
    // header names are case-insensitive
    const norm = kind === 'headers' ? key.toLowerCase() : key
    if (seen.has(norm)) errors.push({ field, code: 'keyDuplicate', key })
    seen.add(norm)
    // a new key needs a value (only a stored one may be left "unchanged")
    if (!r.stored && !r.value) errors.push({ field: `${field}.value`, code: 'valueMissing', key })
  }
  return errors
}

/**
 * The form's mistakes, in the order of the fields. `taken` are the names of the user's own
 * servers (adding one of them again would silently replace it).
 */
export function validateForm(f: McpForm, taken: readonly string[] = []): McpFormError[] {
  const errors: McpFormError[] = []
  const name = f.name.trim()
  if (!name) errors.push({ field: 'name', code: 'nameMissing' })
  else if (!MCP_NAME_RE.test(name)) errors.push({ field: 'name', code: 'nameInvalid' })
  else if (!f.editing && taken.includes(name)) errors.push({ field: 'name', code: 'nameTaken' })
  if (f.transport === 'stdio') {
    if (!f.command.trim()) errors.push({ field: 'command', code: 'commandMissing' })
    errors.push(...rowErrors('env', f.env, ENV_KEY_RE))
  } else {
    const url = f.url.trim()
    if (!url) errors.push({ field: 'url', code: 'urlMissing' })
    else if (!isHttpUrl(url)) errors.push({ field: 'url', code: 'urlInvalid' })
    errors.push(...rowErrors('headers', f.headers, HEADER_KEY_RE))
  }
  return errors
}

/** Secrets for the body: a stored key left empty → `null` (keep), otherwise the new value. */
function secrets(rows: SecretRow[]): Record<string, string | null> {
  const out: Record<string, string | null> = {}
  for (const r of rows) {
    const key = r.key.trim()
    if (!key) continue
    out[key] = r.stored && !r.value ? null : r.value
  }
  return out
}

/**
 * The `PUT /mcp/servers` body of a (valid) form. Only the chosen transport's fields are sent:
 * stdio → command, args, env; sse / streamable-http → url, headers. A stored key the user
 * removed is left out, which removes it on the server.
 */
export function buildPutBody(f: McpForm): McpServerPut {
  const base = { name: f.name.trim(), transport: f.transport, enabled: f.enabled }
  if (f.transport === 'stdio') {
    return { ...base, command: f.command.trim(), args: parseArgs(f.args), env: secrets(f.env) }
  }
  return { ...base, url: f.url.trim(), headers: secrets(f.headers) }
}

/** The body that changes only `enabled` of a stored server (every secret kept). */
export function toggleBody(s: McpServer, enabled: boolean): McpServerPut {
  const keep = (keys: string[] | undefined) => Object.fromEntries((keys ?? []).map((k) => [k, null] as const))
  const base = { name: s.name, transport: s.transport, enabled }
  if (s.transport === 'stdio') return { ...base, command: s.command ?? '', args: s.args ?? [], env: keep(s.env_keys) }
  return { ...base, url: s.url ?? '', headers: keep(s.header_keys) }
}

/** `command arg1 'arg two'` for showing a stdio server's command line. */
export function commandLine(command: string | undefined, args: string[] | undefined): string {
  const quote = (a: string) => (a === '' || /[\s'"\\$`]/.test(a) ? `'${a.replace(/'/g, `'\\''`)}'` : a)
  return [command ?? '', ...(args ?? []).map(quote)].filter((x) => x !== '').join(' ')
}

/** Readiness of a `status` text, for its colour. */
export function statusTone(status: string | undefined): 'ok' | 'error' | 'neutral' {
  const s = (status ?? '').toLowerCase()
  if (s.startsWith('ready')) return 'ok'
  if (s.startsWith('fail') || s.startsWith('error')) return 'error'
  return 'neutral'
}

// --- MCP tool calls in the timeline --------------------------------------------------

/**
 * `mcp__<server>__<tool>` → `{server, tool}`: the prefix, then the server up to the next
 * `__`, the rest is the tool (which may itself contain `__`). Null for any other name.
 */
export function parseMcpFunction(fn: string): { server: string; tool: string } | null {
  const prefix = 'mcp__'
  if (!fn.startsWith(prefix)) return null
  const rest = fn.slice(prefix.length)
  const i = rest.indexOf('__')
  if (i <= 0 || i + 2 >= rest.length) return null
  return { server: rest.slice(0, i), tool: rest.slice(i + 2) }
}

/** Characters of an MCP result (or of its arguments) shown at most; the rest is cut. */
export const MCP_DISPLAY_MAX = 20_000

/** `s` cut to `max` characters (code points), with how long it was. */
export function capText(s: string, max = MCP_DISPLAY_MAX): { text: string; truncated: boolean; total: number } {
  if (s.length <= max) return { text: s, truncated: false, total: [...s].length }
  const chars = [...s]
  if (chars.length <= max) return { text: s, truncated: false, total: chars.length }
  return { text: chars.slice(0, max).join(''), truncated: true, total: chars.length }
}

/** The arguments of a call as pretty JSON ('' when there are none). */
export function prettyArgs(args: Record<string, unknown>): string {
  if (!Object.keys(args).length) return ''
  try {
    return JSON.stringify(args, null, 2)
  } catch {
    return String(args)
  }
}

/** The result text of an MCP call: `content.result` (a string, or JSON for anything else). */
export function mcpResultText(content: { result?: unknown } | null | undefined): string | null {
  const r = content?.result
  if (r === undefined || r === null) return null
  if (typeof r === 'string') return r
  try {
    return JSON.stringify(r, null, 2)
  } catch {
    return String(r)
  }
}
