/**
 * Thin fetch wrapper over the Ironhand API.
 *
 * - unwraps the `{code, msg, data}` envelope, throws a typed `ApiError` otherwise;
 * - keeps the access token (and, without cookie mode, the refresh token) in memory only;
 * - on 401 performs ONE refresh (`POST /api/v1/auth/refresh`, credentials included so the
 *   HttpOnly cookie is sent in cookie mode) and retries the request once. Refreshes are
 *   single-flight per tab; tabs do not coordinate (no cross-tab lock that could hang): the
 *   server answers a refresh token it rotated moments ago with the same successor
 *   (`auth.refresh_reuse_grace_secs`), so tabs sharing the cookie may refresh at once;
 * - on 429 exposes `retryAfter` (seconds) from `data.retry_after` or the `Retry-After` header.
 */
import type { paths } from './schema'
import type { BodyOf, DataOf, Method, PathParamsOf, PathsWith, QueryOf, TokenResponse } from './types'

export const API_PREFIX = '/api/v1'

export class ApiError extends Error {
  readonly status: number
  readonly code: number
  readonly msg: string
  readonly data: unknown
  /** Seconds to wait before retrying (429 only). */
  readonly retryAfter: number | null

  constructor(status: number, code: number, msg: string, data: unknown, retryAfter: number | null = null) {
    super(msg)
    this.name = 'ApiError'
    this.status = status
    this.code = code
    this.msg = msg
    this.data = data
    this.retryAfter = retryAfter
  }

  /** A network failure (no HTTP answer at all) has status 0. */
  get isNetwork(): boolean {
    return this.status === 0
  }
}

interface TokenState {
  access: string | null
  refresh: string | null
}

const tokens: TokenState = { access: null, refresh: null }
/** Cookie mode (`refresh_cookie` in `/auth/status`): the refresh token lives only in the
 * server's HttpOnly cookie, never in this page's memory. */
let cookieMode = false
let fetchImpl: typeof fetch = (...args) => globalThis.fetch(...args)
let refreshing: Promise<boolean> | null = null
/** A refresh that has not answered by then counts as failed, so no caller waits forever. */
export const REFRESH_TIMEOUT_MS = 15_000
const authListeners = new Set<(loggedIn: boolean) => void>()

export function setFetch(f: typeof fetch): void {
  fetchImpl = f
}

export function setCookieMode(on: boolean): void {
  cookieMode = on
  if (on) tokens.refresh = null
}

export function setTokens(access: string | null, refresh?: string | null): void {
  tokens.access = access
  // In cookie mode the cookie holds the refresh token, unless the browser refused it
  // (`Secure` cookies over plain http on a host other than localhost): then keep it in
  // memory, or the user would be signed out when the access token expires.
  if (refresh !== undefined) tokens.refresh = cookieMode && csrfToken() ? null : refresh
}

/** The double-submit value the server sets next to the refresh cookie (readable by design). */
function csrfToken(): string | null {
  if (typeof document === 'undefined') return null
  const m = /(?:^|;\s*)ironhand_csrf=([^;]+)/.exec(document.cookie)
  return m?.[1] ? decodeURIComponent(m[1]) : null
}

export function getAccessToken(): string | null {
  return tokens.access
}

export function getRefreshToken(): string | null {
  return tokens.refresh
}

export function clearTokens(): void {
  tokens.access = null
  tokens.refresh = null
}

/** Called with `false` when a refresh fails (the user must log in again). */
export function onAuthChange(cb: (loggedIn: boolean) => void): () => void {
  authListeners.add(cb)
  return () => authListeners.delete(cb)
}

function retryAfterOf(res: Response, data: unknown): number | null {
  if (data && typeof data === 'object' && 'retry_after' in data) {
    const n = Number((data as { retry_after: unknown }).retry_after)
    if (Number.isFinite(n)) return n
  }
  const h = res.headers.get('Retry-After')
  if (h !== null) {
    const n = Number(h)
    if (Number.isFinite(n)) return n
  }
  return null
}

/** Turns a non-2xx (or a non-zero envelope code) into an ApiError. */
export async function errorFromResponse(res: Response): Promise<ApiError> {
  let code = res.status
  let msg = res.statusText || `HTTP ${res.status}`
  let data: unknown = null
  try {
    const body: unknown = await res.json()
    if (body && typeof body === 'object') {
      const b = body as { code?: unknown; msg?: unknown; data?: unknown }
      if (typeof b.code === 'number') code = b.code
      if (typeof b.msg === 'string' && b.msg) msg = b.msg
      data = b.data ?? null
    }
  } catch {
    // not JSON (a proxy error page, for example): keep the status line
  }
  return new ApiError(res.status, code, msg, data, res.status === 429 ? retryAfterOf(res, data) : null)
}

function networkError(e: unknown): ApiError {
  const msg = e instanceof Error ? e.message : String(e)
  return new ApiError(0, 0, `Network error: ${msg}`, null)
}

function signedOut(): false {
  clearTokens()
  authListeners.forEach((cb) => cb(false))
  return false
}

/**
 * One refresh at a time per tab: concurrent 401s share it. `failedWith` is the access token
 * the refused request carried: when a refresh has replaced it meanwhile, the request only
 * needs a retry, not another refresh. Resolves true when a current access token is there.
 */
export function refreshAccessToken(failedWith?: string | null): Promise<boolean> {
  if (!refreshing && failedWith && tokens.access && tokens.access !== failedWith) return Promise.resolve(true)
  if (!refreshing) {
    refreshing = (async () => {
      const abort = new AbortController()
      const timer = setTimeout(() => abort.abort(), REFRESH_TIMEOUT_MS)
      try {
        const csrf = tokens.refresh ? null : csrfToken()
        // cookie mode: the CSRF cookie lives exactly as long as the refresh cookie, so
        // without it there is nothing to refresh (a first visit, or another tab logged out)
        if (cookieMode && !tokens.refresh && !csrf) return tokens.access ? signedOut() : false
        const res = await fetchImpl(`${API_PREFIX}/auth/refresh`, {
          method: 'POST',
          credentials: 'include',
          headers: {
            'Content-Type': 'application/json',
            Accept: 'application/json',
            ...(csrf ? { 'X-CSRF-Token': csrf } : {}),
          },
          body: JSON.stringify(tokens.refresh ? { refresh_token: tokens.refresh } : {}),
          signal: abort.signal,
        })
        if (!res.ok) return signedOut()
        const env = (await res.json()) as { code: number; data: TokenResponse }
        if (env.code !== 0 || !env.data?.access_token) return signedOut()
        setTokens(env.data.access_token, env.data.refresh_token ?? null)
        authListeners.forEach((cb) => cb(true))
        return true
      } catch {
        // network failure or timeout: the session may well be alive, so keep the tokens
        return false
      } finally {
        clearTimeout(timer)
      }
    })().finally(() => {
      refreshing = null
    })
  }
  return refreshing
}

export interface RequestOptions {
  body?: unknown
  query?: Record<string, string | number | boolean | undefined | null>
  /** Send the bearer token (default true). */
  auth?: boolean
  signal?: AbortSignal
  /** Extra headers. */
  headers?: Record<string, string>
}

function buildUrl(path: string, query?: RequestOptions['query']): string {
  const url = path.startsWith('/api/') ? path : `${API_PREFIX}${path}`
  if (!query) return url
  const qs = new URLSearchParams()
  for (const [k, v] of Object.entries(query)) if (v !== undefined && v !== null) qs.set(k, String(v))
  const s = qs.toString()
  return s ? `${url}?${s}` : url
}

/** Headers for a raw authenticated request (used by the SSE helpers). */
export function authHeaders(): Record<string, string> {
  return tokens.access ? { Authorization: `Bearer ${tokens.access}` } : {}
}

/** Untyped request: returns the envelope's `data`. */
export async function requestRaw<T>(method: string, path: string, opts: RequestOptions = {}): Promise<T> {
  const url = buildUrl(path, opts.query)
  const useAuth = opts.auth !== false
  let sentWith: string | null = null
  const send = async (): Promise<Response> => {
    const headers: Record<string, string> = { Accept: 'application/json', ...opts.headers }
    if (opts.body !== undefined) headers['Content-Type'] = 'application/json'
    sentWith = tokens.access
    if (useAuth) Object.assign(headers, authHeaders())
    try {
      return await fetchImpl(url, {
        method: method.toUpperCase(),
        headers,
        credentials: 'same-origin',
        body: opts.body !== undefined ? JSON.stringify(opts.body) : undefined,
        signal: opts.signal,
      })
    } catch (e) {
      if (e instanceof DOMException && e.name === 'AbortError') throw e
      throw networkError(e)
    }
  }

  let res = await send()
  // 401 is only ever "access token missing/expired/revoked" (or bad login credentials,
  // which are sent with auth: false). Refresh once, retry once, never loop.
  if (res.status === 401 && useAuth) {
    if (await refreshAccessToken(sentWith)) res = await send()
  }
  if (!res.ok) throw await errorFromResponse(res)

  let env: { code?: unknown; msg?: unknown; data?: unknown }
  try {
    env = (await res.json()) as typeof env
  } catch {
    throw new ApiError(res.status, res.status, 'The server sent an unreadable answer.', null)
  }
  if (typeof env.code === 'number' && env.code !== 0) {
    throw new ApiError(res.status, env.code, typeof env.msg === 'string' ? env.msg : 'Request failed', env.data ?? null)
  }
  return (env.data ?? null) as T
}

function fillPath(path: string, params: Record<string, string> | undefined): string {
  if (!params) return path
  return path.replace(/\{(\w+)\}/g, (_, k: string) => {
    const v = params[k]
    if (v === undefined) throw new Error(`missing path parameter ${k}`)
    return encodeURIComponent(v)
  })
}

type TypedOpts<P extends keyof paths, M extends Method> = Omit<RequestOptions, 'body' | 'query'> &
  (PathParamsOf<P, M> extends undefined ? { path?: undefined } : { path: PathParamsOf<P, M> }) &
  (BodyOf<P, M> extends undefined ? { body?: undefined } : { body: BodyOf<P, M> }) & {
    query?: QueryOf<P, M> extends undefined ? undefined : QueryOf<P, M>
  }

/** Typed request against a path of the OpenAPI document. */
export function call<M extends Method, P extends PathsWith<M> & string>(
  method: M,
  path: P,
  ...[opts]: TypedOpts<P, M> extends { path?: undefined; body?: undefined } ? [TypedOpts<P, M>?] : [TypedOpts<P, M>]
): Promise<DataOf<P, M>> {
  const o = (opts ?? {}) as RequestOptions & { path?: Record<string, string> }
  return requestRaw<DataOf<P, M>>(method, fillPath(path, o.path), {
    ...o,
    query: o.query as RequestOptions['query'],
  })
}
