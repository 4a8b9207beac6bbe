// Shared test helpers: mounting with i18n + pinia + a stubbed RouterLink, fake subscriptions.
import { mount, RouterLinkStub, type ComponentMountingOptions } from '@vue/test-utils'
import { createPinia, setActivePinia, type Pinia } from 'pinia'
import type { Component } from 'vue'
import type { Subscription } from '@/api/types'
import { i18n } from '@/i18n'

export function freshPinia(): Pinia {
  const p = createPinia()
  setActivePinia(p)
  return p
}

export function mountWith<C extends Component>(c: C, opts: ComponentMountingOptions<C> = {} as ComponentMountingOptions<C>, pinia = freshPinia()) {
  i18n.global.locale.value = 'en'
  const g = opts.global ?? {}
  return mount(c, {
    ...opts,
    global: {
      ...g,
      plugins: [i18n, pinia, ...(g.plugins ?? [])],
      stubs: { RouterLink: RouterLinkStub, ...(g.stubs ?? {}) },
    },
  } as ComponentMountingOptions<C>)
}

export function subscription(over: Partial<Subscription> = {}): Subscription {
  return {
    id: 'sub1',
    user_id: 'u1',
    plan: 'free',
    status: 'active',
    monthly_agent_runs: 0,
    monthly_agent_runs_limit: 10,
    current_period_start: '2026-01-01T00:00:00Z',
    current_period_end: '2026-02-01T00:00:00Z',
    cancel_at_period_end: false,
    is_trial: false,
    trial_end: null,
    trial_used: false,
    has_billing_account: false,
    limits_enforced: true,
    ...over,
  }
}

export const flush = () => new Promise((r) => setTimeout(r, 0))
