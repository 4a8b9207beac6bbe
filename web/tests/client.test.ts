import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import {
  ApiError,
  REFRESH_TIMEOUT_MS,
  call,
  clearTokens,
  getAccessToken,
  getRefreshToken,
  onAuthChange,
  refreshAccessToken,
  requestRaw,
  setCookieMode,
  setFetch,
  setTokens,
} from '@/api/client'

type Handler = (url: string, init: RequestInit) => Response | Promise<Response>

function json(status: number, body: unknown, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify(body), { status, headers: { 'Content-Type': 'application/json', ...headers } })
}

function mockFetch(handler: Handler) {
  const f = vi.fn((input: RequestInfo | URL, init?: RequestInit) => Promise.resolve(handler(String(input), init ?? {})))
  setFetch(f as unknown as typeof fetch)
  return f
}

const authOf = (init: RequestInit) => (init.headers as Record<string, string>)['Authorization']

beforeEach(() => clearTokens())
afterEach(() => clearTokens())

describe('api client', () => {
  it('unwraps the envelope', async () => {
    mockFetch(() => json(200, { code: 0, msg: 'success', data: { session_id: 's1' } }))
    setTokens('A')
    await expect(call('put', '/api/v1/sessions')).resolves.toEqual({ session_id: 's1' })
  })

  it('sends the bearer token and fills path parameters', async () => {
    const f = mockFetch(() => json(200, { code: 0, msg: 'success', data: null }))
    setTokens('tok')
    await call('post', '/api/v1/sessions/{id}/stop', { path: { id: 'a b' } })
    const [url, init] = f.mock.calls[0]!
    expect(url).toBe('/api/v1/sessions/a%20b/stop')
    expect(authOf(init!)).toBe('Bearer tok')
  })

  it('throws a typed ApiError with status, code, msg and data', async () => {
    mockFetch(() => json(422, { code: 422, msg: 'Validation failed', data: [{ field: 'email', message: 'bad' }] }))
    const e = await requestRaw('post', '/auth/register', { body: {}, auth: false }).catch((x: unknown) => x)
    expect(e).toBeInstanceOf(ApiError)
    expect(e).toMatchObject({ status: 422, code: 422, msg: 'Validation failed', data: [{ field: 'email', message: 'bad' }] })
  })

  it('on 401 refreshes once (cookie mode: credentials include) and retries', async () => {
    setTokens('old', null)
    const seen: string[] = []
    const f = mockFetch((url, init) => {
      seen.push(`${init.method} ${url} ${authOf(init) ?? ''}`)
      if (url.endsWith('/auth/refresh')) {
        expect(init.credentials).toBe('include')
        return json(200, { code: 0, msg: 'success', data: { access_token: 'new', refresh_token: 'r2', token_type: 'bearer', expires_in: 900 } })
      }
      if (authOf(init) === 'Bearer new') return json(200, { code: 0, msg: 'success', data: { ok: 1 } })
      return json(401, { code: 401, msg: 'Token expired', data: null })
    })
    await expect(requestRaw('get', '/auth/me')).resolves.toEqual({ ok: 1 })
    expect(f).toHaveBeenCalledTimes(3)
    expect(seen).toEqual(['GET /api/v1/auth/me Bearer old', 'POST /api/v1/auth/refresh ', 'GET /api/v1/auth/me Bearer new'])
    expect(getAccessToken()).toBe('new')
  })

  it('does not loop when the retried request is 401 again', async () => {
    setTokens('old')
    const f = mockFetch((url) =>
      url.endsWith('/auth/refresh')
        ? json(200, { code: 0, msg: 'success', data: { access_token: 'new', refresh_token: 'r', token_type: 'bearer', expires_in: 900 } })
        : json(401, { code: 401, msg: 'Token revoked', data: null }),
    )
    await expect(requestRaw('get', '/auth/me')).rejects.toMatchObject({ status: 401 })
    expect(f).toHaveBeenCalledTimes(3)
  })

  it('a failed refresh clears the tokens and surfaces the 401', async () => {
    setTokens('old', 'r1')
    const f = mockFetch((url) =>
      url.endsWith('/auth/refresh') ? json(401, { code: 401, msg: 'Invalid refresh token', data: null }) : json(401, { code: 401, msg: 'Expired', data: null }),
    )
    await expect(requestRaw('get', '/auth/me')).rejects.toMatchObject({ status: 401, msg: 'Expired' })
    expect(f).toHaveBeenCalledTimes(2)
    expect(getAccessToken()).toBeNull()
  })

  it('concurrent 401s share one refresh', async () => {
    setTokens('old')
    let refreshes = 0
    mockFetch(async (url, init) => {
      if (url.endsWith('/auth/refresh')) {
        refreshes++
        await new Promise((r) => setTimeout(r, 5))
        return json(200, { code: 0, msg: 'success', data: { access_token: 'new', refresh_token: 'r', token_type: 'bearer', expires_in: 900 } })
      }
      return authOf(init) === 'Bearer new' ? json(200, { code: 0, msg: 'success', data: 1 }) : json(401, { code: 401, msg: 'x', data: null })
    })
    await Promise.all([requestRaw('get', '/a'), requestRaw('get', '/b'), requestRaw('get', '/c')])
    expect(refreshes).toBe(1)
  })

  it.each([400, 402, 403, 404, 409])('no refresh on business error %i', async (status) => {
    setTokens('tok')
    const f = mockFetch(() => json(status, { code: status, msg: 'Nope', data: null }))
    await expect(requestRaw('post', '/sessions/x/chat', { body: {} })).rejects.toMatchObject({ status, msg: 'Nope' })
    expect(f).toHaveBeenCalledTimes(1)
  })

  it('does not refresh on a 401 from an unauthenticated call (wrong login)', async () => {
    const f = mockFetch(() => json(401, { code: 401, msg: 'Invalid email or password', data: null }))
    await expect(call('post', '/api/v1/auth/login', { body: { email: 'a@b.c', password: 'x' }, auth: false })).rejects.toMatchObject({
      status: 401,
      msg: 'Invalid email or password',
    })
    expect(f).toHaveBeenCalledTimes(1)
  })

  it('429 exposes retry_after from data, else from the Retry-After header', async () => {
    mockFetch(() => json(429, { code: 429, msg: 'Too many requests', data: { retry_after: 17 } }, { 'Retry-After': '20' }))
    await expect(requestRaw('get', '/x')).rejects.toMatchObject({ status: 429, retryAfter: 17 })
    mockFetch(() => json(429, { code: 429, msg: 'Too many requests', data: null }, { 'Retry-After': '9' }))
    await expect(requestRaw('get', '/x')).rejects.toMatchObject({ status: 429, retryAfter: 9 })
  })

  it('a network failure becomes ApiError status 0', async () => {
    setFetch((() => Promise.reject(new TypeError('Failed to fetch'))) as unknown as typeof fetch)
    const e = await requestRaw('get', '/x').catch((x: unknown) => x)
    expect(e).toBeInstanceOf(ApiError)
    expect((e as ApiError).isNetwork).toBe(true)
  })

  it('a non-zero envelope code in a 200 is an error', async () => {
    mockFetch(() => json(200, { code: 400, msg: 'Refused', data: null }))
    await expect(requestRaw('get', '/x')).rejects.toMatchObject({ code: 400, msg: 'Refused' })
  })

  it('never writes tokens to localStorage', async () => {
    mockFetch(() => json(200, { code: 0, msg: 'success', data: { access_token: 'A', refresh_token: 'R', token_type: 'bearer', expires_in: 900, user: {} } }))
    setTokens('A', 'R')
    await requestRaw('post', '/auth/login', { body: {}, auth: false })
    const all = Object.keys(localStorage).map((k) => localStorage.getItem(k) ?? '').join(' ')
    expect(all).not.toContain('A')
  })

  it('in cookie mode keeps no refresh token and proves the origin with the CSRF cookie', async () => {
    setCookieMode(true)
    try {
      // the browser refused the cookies (plain http on another host): keep the token
      setTokens('A', 'refresh-from-body')
      expect(getRefreshToken()).toBe('refresh-from-body')
      document.cookie = 'ironhand_csrf=csrf%20value; path=/'
      setTokens('A', 'refresh-from-body')
      expect(getRefreshToken()).toBeNull()
      let sent: RequestInit | null = null
      mockFetch((url, init) => {
        sent = init
        return json(200, { code: 0, msg: 'success', data: { access_token: 'B', refresh_token: 'R2', token_type: 'bearer', expires_in: 900 } })
      })
      await expect(refreshAccessToken()).resolves.toBe(true)
      const init = sent as unknown as RequestInit
      expect(init.credentials).toBe('include')
      expect(init.body).toBe('{}')
      expect((init.headers as Record<string, string>)['X-CSRF-Token']).toBe('csrf value')
      expect(getAccessToken()).toBe('B')
      expect(getRefreshToken()).toBeNull()
      // no CSRF cookie (first visit, logged out): no request at all
      document.cookie = 'ironhand_csrf=; max-age=0; path=/'
      const f = mockFetch(() => json(401, { code: 401, msg: 'no', data: null }))
      await expect(refreshAccessToken()).resolves.toBe(false)
      expect(f).not.toHaveBeenCalled()
      // and the next refresh is a new attempt, not the settled one
      document.cookie = 'ironhand_csrf=again; path=/'
      mockFetch(() => json(200, { code: 0, msg: 'success', data: { access_token: 'C', refresh_token: 'R3', token_type: 'bearer', expires_in: 900 } }))
      await expect(refreshAccessToken()).resolves.toBe(true)
      expect(getAccessToken()).toBe('C')
    } finally {
      setCookieMode(false)
      document.cookie = 'ironhand_csrf=; max-age=0; path=/'
    }
  })

  it('a 401 for a request sent before the refresh finished is retried, not refreshed again', async () => {
    setTokens('old')
    let refreshes = 0
    const seen: string[] = []
    mockFetch(async (url, init) => {
      if (url.endsWith('/auth/refresh')) {
        refreshes++
        return json(200, { code: 0, msg: 'success', data: { access_token: 'new', refresh_token: 'r', token_type: 'bearer', expires_in: 900 } })
      }
      seen.push(`${url} ${authOf(init)}`)
      if (authOf(init) === 'Bearer new') return json(200, { code: 0, msg: 'success', data: 1 })
      // the slow request was sent with the old token and answers after the refresh is over
      if (url.endsWith('/slow')) await new Promise((r) => setTimeout(r, 20))
      return json(401, { code: 401, msg: 'expired', data: null })
    })
    await expect(Promise.all([requestRaw('get', '/slow'), requestRaw('get', '/fast')])).resolves.toEqual([1, 1])
    expect(refreshes).toBe(1)
    expect(seen).toContain('/api/v1/slow Bearer new')
  })

  it('a refresh that never answers gives up, and the next one is a new attempt', async () => {
    vi.useFakeTimers()
    try {
      setTokens('old', 'r1')
      const f = mockFetch(
        (_url, init) =>
          new Promise<Response>((_, reject) => {
            init.signal?.addEventListener('abort', () => reject(new DOMException('timed out', 'AbortError')))
          }),
      )
      const hung = refreshAccessToken()
      await vi.advanceTimersByTimeAsync(REFRESH_TIMEOUT_MS)
      await expect(hung).resolves.toBe(false)
      // a timeout is not a sign-out: the tokens stay for the next try
      expect(getRefreshToken()).toBe('r1')
      void refreshAccessToken()
      expect(f).toHaveBeenCalledTimes(2)
      await vi.advanceTimersByTimeAsync(REFRESH_TIMEOUT_MS)
    } finally {
      vi.useRealTimers()
    }
  })

  it('tabs sharing the refresh cookie refresh at once, each once, with no lock between them', async () => {
    // Another tab holding a cross-tab lock forever must not matter: none is taken.
    const request = vi.fn(() => new Promise(() => {}))
    Object.defineProperty(navigator, 'locks', { value: { request }, configurable: true })
    document.cookie = 'ironhand_csrf=c; path=/'
    // The server's grace window: a token rotated moments ago answers with the same successor.
    let cookie = 'R0'
    const rotatedTo = new Map<string, string>()
    const server: Handler = async (url, init) => {
      if (url.endsWith('/auth/refresh')) {
        const sent = cookie
        await new Promise((r) => setTimeout(r, 5))
        const next = rotatedTo.get(sent) ?? `${sent}+`
        rotatedTo.set(sent, next)
        cookie = next
        return json(200, { code: 0, msg: 'success', data: { access_token: `access for ${next}`, refresh_token: next, token_type: 'bearer', expires_in: 900 } })
      }
      return authOf(init)?.startsWith('Bearer access for') ? json(200, { code: 0, msg: 'success', data: 1 }) : json(401, { code: 401, msg: 'expired', data: null })
    }
    const refreshes = () => fetchSpy.mock.calls.filter(([u]) => String(u).endsWith('/auth/refresh')).length
    const fetchSpy = vi.fn((input: RequestInfo | URL, init?: RequestInit) => Promise.resolve(server(String(input), init ?? {})))
    try {
      const tabs = []
      for (let i = 0; i < 2; i++) {
        vi.resetModules()
        const tab = await import('@/api/client')
        tab.setFetch(fetchSpy as unknown as typeof fetch)
        tab.setCookieMode(true)
        tab.setTokens('expired')
        tabs.push(tab)
      }
      const loggedOut = vi.fn()
      tabs.forEach((tab) => tab.onAuthChange((ok) => ok || loggedOut()))
      const answers = await Promise.all(tabs.flatMap((tab) => [tab.requestRaw('get', '/a'), tab.requestRaw('get', '/b'), tab.requestRaw('get', '/c')]))
      expect(answers).toEqual([1, 1, 1, 1, 1, 1])
      expect(refreshes()).toBe(2)
      expect(cookie).toBe('R0+')
      expect(tabs.map((tab) => tab.getAccessToken())).toEqual(['access for R0+', 'access for R0+'])
      expect(loggedOut).not.toHaveBeenCalled()
      expect(request).not.toHaveBeenCalled()
    } finally {
      Reflect.deleteProperty(navigator, 'locks')
      document.cookie = 'ironhand_csrf=; max-age=0; path=/'
    }
  })

  it('in cookie mode a tab whose session another tab ended signs out at its next refresh', async () => {
    setCookieMode(true)
    const signedIn: boolean[] = []
    const off = onAuthChange((ok) => signedIn.push(ok))
    try {
      setTokens('A')
      // the other tab's logout cleared the shared cookies
      const f = mockFetch(() => json(401, { code: 401, msg: 'revoked', data: null }))
      await expect(requestRaw('get', '/auth/me')).rejects.toMatchObject({ status: 401 })
      expect(f).toHaveBeenCalledTimes(1)
      expect(signedIn).toEqual([false])
      expect(getAccessToken()).toBeNull()
    } finally {
      off()
      setCookieMode(false)
    }
  })
})
