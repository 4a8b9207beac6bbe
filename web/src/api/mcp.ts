/**
 * MCP servers ("connectors", docs/api.md: `/mcp/servers`). Written by hand before the routes
 * were in `openapi.json`, so they go through `requestRaw` (envelope, bearer, one refresh on
 * 401, `ApiError` with the server's `msg`) and answers are coerced rather than trusted. The
 * routes are in the generated `schema.d.ts` now, so they can move to `call`.
 *
 * Secrets are write-only: an answer names the keys of `env` / `headers` (`env_keys`,
 * `header_keys`), never their values. In a `PUT` body a key whose value is `null` keeps the
 * stored value, a string replaces it, and a key left out is removed.
 */
import { requestRaw } from './client'

export const MCP_TRANSPORTS = ['stdio', 'sse', 'streamable-http'] as const
export type McpTransport = (typeof MCP_TRANSPORTS)[number]
export type McpScope = 'user' | 'operator'

export interface McpServer {
  name: string
  transport: McpTransport
  url?: string
  command?: string
  args?: string[]
  /** names of the stored environment variables (values are never sent back) */
  env_keys?: string[]
  /** names of the stored HTTP headers (values are never sent back) */
  header_keys?: string[]
  enabled: boolean
  /** `operator`: configured by the operator, read-only for the user */
  scope: McpScope
  description?: string
  /** short readiness text ("ready: 12 tools", "failed to start: …", "not started yet") */
  status?: string
}

/** `PUT /mcp/servers`: creates or replaces the user's server `name`. */
export interface McpServerPut {
  name: string
  transport: McpTransport
  url?: string
  /** `null` keeps the stored value of that key; a key left out is removed */
  headers?: Record<string, string | null>
  command?: string
  args?: string[]
  /** `null` keeps the stored value of that key; a key left out is removed */
  env?: Record<string, string | null>
  enabled?: boolean
}

export interface McpTool {
  name: string
  description: string
}

export interface McpTestResult {
  tools: McpTool[]
}

const PATH = '/api/v1/mcp/servers'

export function isMcpTransport(v: unknown): v is McpTransport {
  return typeof v === 'string' && (MCP_TRANSPORTS as readonly string[]).includes(v)
}

const strings = (v: unknown): string[] | undefined =>
  Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : undefined
const optString = (v: unknown): string | undefined => (typeof v === 'string' && v ? v : undefined)

/** One server of an answer, or null when it has no usable name or transport. */
export function toMcpServer(v: unknown): McpServer | null {
  if (!v || typeof v !== 'object') return null
  const x = v as Record<string, unknown>
  if (typeof x.name !== 'string' || !x.name || !isMcpTransport(x.transport)) return null
  return {
    name: x.name,
    transport: x.transport,
    url: optString(x.url),
    command: optString(x.command),
    args: strings(x.args),
    env_keys: strings(x.env_keys),
    header_keys: strings(x.header_keys),
    enabled: x.enabled !== false,
    // anything the client does not recognise as the user's own is treated as read-only
    scope: x.scope === 'user' ? 'user' : 'operator',
    description: optString(x.description),
    status: optString(x.status),
  }
}

export function toMcpServers(v: unknown): McpServer[] {
  return Array.isArray(v) ? v.map(toMcpServer).filter((s): s is McpServer => s !== null) : []
}

export function toMcpTools(v: unknown): McpTool[] {
  const list = v && typeof v === 'object' ? (v as { tools?: unknown }).tools : undefined
  if (!Array.isArray(list)) return []
  return list
    .filter((x): x is Record<string, unknown> => !!x && typeof x === 'object' && typeof x.name === 'string')
    .map((x) => ({ name: x.name as string, description: typeof x.description === 'string' ? x.description : '' }))
}

/** `GET /mcp/servers`: the user's own servers, then the operator's. */
export async function listMcpServers(signal?: AbortSignal): Promise<McpServer[]> {
  return toMcpServers(await requestRaw<unknown>('get', PATH, { signal }))
}

/** `PUT /mcp/servers`: the stored server (secrets as keys only). */
export async function putMcpServer(body: McpServerPut): Promise<McpServer> {
  const s = toMcpServer(await requestRaw<unknown>('put', PATH, { body }))
  if (!s) throw new Error('The server sent an unreadable answer.')
  return s
}

/** `DELETE /mcp/servers/{name}`. */
export async function deleteMcpServer(name: string): Promise<void> {
  await requestRaw<null>('delete', `${PATH}/${encodeURIComponent(name)}`)
}

/** `POST /mcp/servers/{name}/test`: starts or contacts the server and lists its tools (may take ~30 s). */
export async function testMcpServer(name: string, signal?: AbortSignal): Promise<McpTool[]> {
  return toMcpTools(await requestRaw<unknown>('post', `${PATH}/${encodeURIComponent(name)}/test`, { signal }))
}
