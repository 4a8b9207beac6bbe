import { afterEach, describe, expect, it } from 'vitest'
import { createMemoryHistory, createRouter } from 'vue-router'
import { defineComponent } from 'vue'
import { clearTokens, setFetch } from '@/api/client'
import LoginPage from '@/pages/LoginPage.vue'
import { flush, mountWith } from './helpers'

const json = (data: unknown) => new Response(JSON.stringify({ code: 0, msg: 'success', data }), { status: 200, headers: { 'Content-Type': 'application/json' } })
const user = { id: 'u1', fullname: 'Ada', email: 'ada@example.com', role: 'user', is_active: true, created_at: '2026-01-01T00:00:00Z', updated_at: '2026-01-01T00:00:00Z', last_login_at: null }
const Blank = defineComponent({ render: () => null })

afterEach(() => clearTokens())

async function loginWithNext(next: string): Promise<string> {
  setFetch((async () => json({ access_token: 'A', refresh_token: 'R', token_type: 'bearer', expires_in: 900, user })) as unknown as typeof fetch)
  const router = createRouter({
    history: createMemoryHistory(),
    routes: [
      { path: '/login', component: LoginPage },
      { path: '/:rest(.*)*', component: Blank },
    ],
  })
  await router.push({ path: '/login', query: { next } })
  const w = mountWith(LoginPage, { global: { plugins: [router], stubs: { RouterLink: true } } })
  await w.get('input[type=email]').setValue('ada@example.com')
  await w.get('input[type=password]').setValue('long enough pw')
  await w.get('form').trigger('submit')
  for (let i = 0; i < 5; i++) await flush()
  return router.currentRoute.value.fullPath
}

describe('login ?next=', () => {
  it('goes back to the page the user came from', async () => {
    expect(await loginWithNext('/billing?checkout=success')).toBe('/billing?checkout=success')
  })

  it('never leaves the app for another origin', async () => {
    for (const next of ['//evil.example/x', '/\\evil.example', 'https://evil.example', 'javascript:alert(1)']) {
      expect(await loginWithNext(next), next).toBe('/')
    }
  })
})
