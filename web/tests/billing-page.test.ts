import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { createMemoryHistory, createRouter } from 'vue-router'
import { setFetch } from '@/api/client'
import type { Plan } from '@/api/types'
import BillingPage from '@/pages/BillingPage.vue'
import { useBilling } from '@/stores/billing'
import { freshPinia, mountWith, subscription } from './helpers'

const plans: Plan[] = [
  { id: 'free', name: 'Free', price_cents: 0, currency: 'usd', monthly_agent_runs_limit: 10, max_concurrent_runs: 2, features: ['Public sharing'], purchasable: false },
  { id: 'basic', name: 'Basic', price_cents: 1900, currency: 'usd', monthly_agent_runs_limit: 1000, max_concurrent_runs: 5, features: [], purchasable: true },
  { id: 'pro', name: 'Pro', price_cents: 4900, currency: 'usd', monthly_agent_runs_limit: 5000, max_concurrent_runs: 10, features: [], purchasable: true },
  { id: 'enterprise', name: 'Enterprise', price_cents: 0, currency: 'usd', monthly_agent_runs_limit: -1, max_concurrent_runs: 25, features: ['Contact us'], purchasable: false },
]

async function page(url: string, sub = subscription({ monthly_agent_runs: 4 })) {
  const pinia = freshPinia()
  const billing = useBilling()
  billing.subscription = sub
  const router = createRouter({ history: createMemoryHistory(), routes: [{ path: '/billing', component: BillingPage }] })
  await router.push(url)
  await router.isReady()
  const w = mountWith(BillingPage, { global: { plugins: [router] } }, pinia)
  await vi.advanceTimersByTimeAsync(0)
  return { w, billing }
}

beforeEach(() => {
  vi.useFakeTimers()
  setFetch((async (url: string) => {
    if (url.endsWith('/billing/plans')) return new Response(JSON.stringify({ code: 0, msg: 'success', data: plans }), { status: 200 })
    return new Response(JSON.stringify({ code: 404, msg: 'no', data: null }), { status: 404 })
  }) as unknown as typeof fetch)
})
afterEach(() => {
  vi.useRealTimers()
  sessionStorage.clear()
})

describe('billing page', () => {
  it('shows plans with the current one highlighted, usage, and Upgrade only where purchasable', async () => {
    const { w } = await page('/billing')
    expect(w.get('[data-test=plan-free]').attributes('aria-current')).toBe('true')
    expect(w.get('[data-test=plan-basic]').text()).toContain('$19')
    expect(w.get('[data-test=plan-basic]').text()).toContain('Upgrade')
    expect(w.get('[data-test=plan-pro]').text()).toContain('Upgrade')
    expect(w.get('[data-test=plan-free]').text()).not.toContain('Upgrade')
    expect(w.get('[data-test=plan-enterprise]').text()).not.toContain('Upgrade')
    expect(w.get('[data-test=plan-enterprise]').text()).toContain('Unlimited agent runs')
    expect(w.get('[data-test=usage-numbers]').text()).toBe('4 / 10 runs')
    expect(w.find('[data-test=trial]').exists()).toBe(true)
    expect(w.find('[data-test=portal]').exists()).toBe(false)
    expect(w.find('[data-test=checkout-notice]').exists()).toBe(false)
  })

  it('hides the trial off the free plan and offers the portal with a billing account', async () => {
    const { w } = await page('/billing', subscription({ plan: 'basic', monthly_agent_runs_limit: 1000, has_billing_account: true }))
    expect(w.find('[data-test=trial]').exists()).toBe(false)
    expect(w.find('[data-test=portal]').exists()).toBe(true)
    expect(w.get('[data-test=plan-pro]').text()).toContain('Change in billing portal')
  })

  it('?checkout=success: waits for the plan change from the stream', async () => {
    sessionStorage.setItem('ironhand.checkout.plan', 'pro')
    const { w, billing } = await page('/billing?checkout=success&session_id=cs_1')
    expect(w.get('[data-test=checkout-notice]').text()).toBe('Waiting for payment confirmation…')
    billing.subscription = subscription({ plan: 'pro', monthly_agent_runs_limit: 5000, has_billing_account: true })
    await vi.advanceTimersByTimeAsync(0)
    expect(w.get('[data-test=checkout-notice]').text()).toContain('Payment confirmed')
    expect(w.get('[data-test=plan-pro]').attributes('aria-current')).toBe('true')
    expect(sessionStorage.getItem('ironhand.checkout.plan')).toBeNull()
  })

  it('?checkout=success: says so when the confirmation is late, and still updates', async () => {
    sessionStorage.setItem('ironhand.checkout.plan', 'basic')
    const { w, billing } = await page('/billing?checkout=success&session_id=cs_1')
    await vi.advanceTimersByTimeAsync(60_001)
    expect(w.get('[data-test=checkout-notice]').text()).toContain('taking longer than usual')
    expect(w.get('[data-test=checkout-notice]').attributes('role')).toBe('alert')
    billing.subscription = subscription({ plan: 'basic', monthly_agent_runs_limit: 1000 })
    await vi.advanceTimersByTimeAsync(0)
    expect(w.get('[data-test=checkout-notice]').text()).toContain('Payment confirmed')
  })

  it('?checkout=cancel: a neutral note', async () => {
    sessionStorage.setItem('ironhand.checkout.plan', 'basic')
    const { w } = await page('/billing?checkout=cancel')
    expect(w.get('[data-test=checkout-notice]').text()).toBe('Checkout was canceled; nothing was charged.')
    expect(sessionStorage.getItem('ironhand.checkout.plan')).toBeNull()
  })
})
