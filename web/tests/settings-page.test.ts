import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { createMemoryHistory, createRouter, type Router } from 'vue-router'
import { defineComponent } from 'vue'
import { clearTokens, getAccessToken, setFetch, setTokens } from '@/api/client'
import type { AuthStatusResponse, UserResponse } from '@/api/types'
import SettingsPage from '@/pages/SettingsPage.vue'
import { useAuth } from '@/stores/auth'
import { useToasts } from '@/stores/toast'
import { flush, freshPinia, mountWith } from './helpers'

const json = (data: unknown, status = 200, code = 0, msg = 'success') =>
  new Response(JSON.stringify({ code, msg, data }), { status, headers: { 'Content-Type': 'application/json' } })

const ada: UserResponse = {
  id: 'u1',
  fullname: 'Ada',
  email: 'ada@example.com',
  role: 'admin',
  is_active: true,
  created_at: '2026-01-02T03:04:05Z',
  updated_at: '2026-01-02T03:04:05Z',
  last_login_at: null,
}

interface Req {
  method: string
  url: string
  body: unknown
  auth: string | null
}
let requests: Req[] = []
let answer: (r: Req) => Response
/** the connectors section loads `GET /mcp/servers` on its own (tests/connectors-settings.test.ts) */
let mcpRequests: Req[] = []
let mcpAnswer: () => Response

beforeEach(() => {
  requests = []
  answer = () => json(null, 404, 404, 'Not found')
  mcpRequests = []
  mcpAnswer = () => json([])
  setTokens('tok', 'ref')
  setFetch((async (url: string, init: RequestInit = {}) => {
    const headers = (init.headers ?? {}) as Record<string, string>
    const r: Req = { method: init.method ?? 'GET', url, body: init.body ? JSON.parse(String(init.body)) : null, auth: headers.Authorization ?? null }
    if (r.url.startsWith('/api/v1/mcp/')) {
      mcpRequests.push(r)
      return mcpAnswer()
    }
    requests.push(r)
    return answer(r)
  }) as unknown as typeof fetch)
})
afterEach(() => clearTokens())

const Blank = defineComponent({ render: () => null })

async function page(provider = 'password'): Promise<{ w: ReturnType<typeof mountWith>; router: Router; auth: ReturnType<typeof useAuth> }> {
  const pinia = freshPinia()
  const auth = useAuth()
  auth.status = { auth_provider: provider, registration_open: true, max_upload_bytes: 10485760, refresh_cookie: false } as AuthStatusResponse
  auth.user = { ...ada }
  auth.ready = true
  const router = createRouter({
    history: createMemoryHistory(),
    routes: [
      { path: '/settings', name: 'settings', component: SettingsPage },
      { path: '/login', name: 'login', component: Blank },
    ],
  })
  await router.push('/settings')
  await router.isReady()
  const w = mountWith(SettingsPage, { global: { plugins: [router] }, attachTo: document.body }, pinia)
  await flush()
  return { w, router, auth }
}

describe('settings page', () => {
  it('shows the account', async () => {
    const { w } = await page()
    const acc = w.get('[data-test=settings-account]')
    expect(acc.text()).toContain('ada@example.com')
    expect(acc.text()).toContain('Ada')
    expect(acc.text()).toContain('Administrator')
    expect(acc.text()).toMatch(/2026/)
    w.unmount()
  })

  it('changing the name updates the user in place', async () => {
    answer = (r) => (r.url === '/api/v1/auth/change-fullname' ? json({ ...ada, fullname: 'Ada Lovelace' }) : json(null, 404, 404, 'no'))
    const { w, auth } = await page()
    const input = w.get('[data-test=fullname]')
    expect((input.element as HTMLInputElement).value).toBe('Ada')
    expect(input.attributes('autocomplete')).toBe('name')
    await input.setValue('  Ada Lovelace ')
    await w.get('[data-test=settings-profile] form').trigger('submit')
    await flush()
    expect(requests).toEqual([{ method: 'POST', url: '/api/v1/auth/change-fullname', body: { fullname: 'Ada Lovelace' }, auth: 'Bearer tok' }])
    expect(auth.user?.fullname).toBe('Ada Lovelace')
    await w.vm.$nextTick()
    expect(w.get('[data-test=account-fullname]').text()).toBe('Ada Lovelace')
    expect(useToasts().toasts.map((t) => t.text)).toEqual(['Your name was updated.'])
    w.unmount()
  })

  it('a wrong old password shows the server’s message', async () => {
    answer = (r) =>
      r.url === '/api/v1/auth/change-password' ? json(null, 400, 400, 'The current password is wrong.') : json(null, 404, 404, 'no')
    const { w } = await page()
    expect(w.get('[data-test=old-password]').attributes('autocomplete')).toBe('current-password')
    expect(w.get('[data-test=new-password]').attributes('autocomplete')).toBe('new-password')
    await w.get('[data-test=old-password]').setValue('nope nope')
    await w.get('[data-test=new-password]').setValue('new password 1')
    await w.get('[data-test=confirm-password]').setValue('new password 1')
    await w.get('[data-test=settings-password] form').trigger('submit')
    await flush()
    expect(requests).toHaveLength(1)
    expect(requests[0]!.body).toEqual({ old_password: 'nope nope', new_password: 'new password 1' })
    const toasts = useToasts().toasts
    expect(toasts).toHaveLength(1)
    expect(toasts[0]).toMatchObject({ kind: 'error', text: 'The current password is wrong.' })
    // the fields stay for another try
    expect((w.get('[data-test=old-password]').element as HTMLInputElement).value).toBe('nope nope')
    w.unmount()
  })

  it('refuses a mismatching confirmation or a short password without a request', async () => {
    const { w } = await page()
    await w.get('[data-test=old-password]').setValue('old password')
    await w.get('[data-test=new-password]').setValue('new password 1')
    await w.get('[data-test=confirm-password]').setValue('new password 2')
    await w.get('[data-test=settings-password] form').trigger('submit')
    await flush()
    expect(requests).toHaveLength(0)
    expect(w.get('[data-test=password-error]').text()).toBe('The two new passwords do not match.')

    await w.get('[data-test=new-password]').setValue('short')
    await w.get('[data-test=confirm-password]').setValue('short')
    await w.get('[data-test=settings-password] form').trigger('submit')
    await flush()
    expect(requests).toHaveLength(0)
    expect(w.get('[data-test=password-error]').text()).toBe('The new password must be at least 8 characters long.')
    w.unmount()
  })

  it('a successful change clears the fields and says so', async () => {
    answer = () => json(null)
    const { w } = await page()
    await w.get('[data-test=old-password]').setValue('old password')
    await w.get('[data-test=new-password]').setValue('new password 1')
    await w.get('[data-test=confirm-password]').setValue('new password 1')
    await w.get('[data-test=settings-password] form').trigger('submit')
    await flush()
    expect(requests.map((r) => r.url)).toEqual(['/api/v1/auth/change-password'])
    expect((w.get('[data-test=new-password]').element as HTMLInputElement).value).toBe('')
    expect(useToasts().toasts[0]).toMatchObject({ kind: 'info' })
    w.unmount()
  })

  it('log out everywhere: asks, revokes, clears the tokens and goes to /login', async () => {
    answer = (r) => (r.url === '/api/v1/auth/logout-all' ? json(null) : json(null, 404, 404, 'no'))
    const { w, router, auth } = await page()
    await w.get('[data-test=logout-all]').trigger('click')
    await flush()
    expect(requests).toHaveLength(0)
    expect(document.activeElement).toBe(w.get('[data-test=logout-all-confirm]').element)
    await w.get('[data-test=logout-all-confirm]').trigger('click')
    await flush()
    await flush()
    expect(requests).toEqual([{ method: 'POST', url: '/api/v1/auth/logout-all', body: null, auth: 'Bearer tok' }])
    expect(getAccessToken()).toBeNull()
    expect(auth.user).toBeNull()
    expect(router.currentRoute.value.name).toBe('login')
    w.unmount()
  })

  it('a failed log out everywhere keeps the session and shows the error', async () => {
    answer = () => json(null, 500, 500, 'Database unavailable')
    const { w, router, auth } = await page()
    await w.get('[data-test=logout-all]').trigger('click')
    await flush()
    await w.get('[data-test=logout-all-confirm]').trigger('click')
    await flush()
    expect(useToasts().toasts[0]).toMatchObject({ kind: 'error', text: 'Database unavailable' })
    expect(getAccessToken()).toBe('tok')
    expect(auth.user).not.toBeNull()
    expect(router.currentRoute.value.name).toBe('settings')
    w.unmount()
  })

  it('has the connectors section, which loads the MCP servers without a toast', async () => {
    mcpAnswer = () =>
      json([{ name: 'ops-search', transport: 'sse', url: 'https://mcp.example.com/sse', enabled: true, scope: 'operator', status: 'ready: 2 tools' }])
    const { w } = await page('none')
    const sec = w.get('[data-test=settings-connectors]')
    expect(sec.get('h2').text()).toBe('Connectors')
    expect(mcpRequests).toEqual([{ method: 'GET', url: '/api/v1/mcp/servers', body: null, auth: 'Bearer tok' }])
    expect(sec.get('[data-test=connector-name]').text()).toBe('ops-search')
    expect(sec.find('[data-test=connector-operator]').exists()).toBe(true)
    expect(useToasts().toasts).toEqual([])
    w.unmount()
  })

  it('says so when the server has no connectors route (404), without a toast', async () => {
    mcpAnswer = () => json(null, 404, 404, 'Not found')
    const { w } = await page()
    expect(w.get('[data-test=connectors-unavailable]').text()).toBe('Connectors are not available on this server.')
    expect(w.find('[data-test=connector-add]').exists()).toBe(false)
    expect(useToasts().toasts).toEqual([])
    w.unmount()
  })

  it('hides profile, password and log out everywhere without password accounts', async () => {
    const { w } = await page('none')
    expect(w.find('[data-test=settings-account]').exists()).toBe(true)
    expect(w.find('[data-test=settings-appearance]').exists()).toBe(true)
    expect(w.find('[data-test=settings-profile]').exists()).toBe(false)
    expect(w.find('[data-test=settings-password]').exists()).toBe(false)
    expect(w.find('[data-test=settings-sessions]').exists()).toBe(false)
    w.unmount()
  })
})
