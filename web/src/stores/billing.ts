import { defineStore } from 'pinia'
import { computed, ref, watch } from 'vue'
import { call, onAuthChange } from '@/api/client'
import { keepStreamOpen } from '@/api/sse'
import type { PaidPlan, Plan, Subscription } from '@/api/types'
import { usageOf } from '@/lib/usage'
import { useToasts } from './toast'

/** The return from Stripe Checkout, as the billing page shows it. */
export type CheckoutState = 'waiting' | 'confirmed' | 'timeout' | 'cancel'

/** How long the billing page waits for the webhook's plan change before saying so. */
export const CHECKOUT_CONFIRM_TIMEOUT_MS = 60_000

/** The plan a checkout was started for, kept across Stripe's redirect (not a secret). */
const PENDING_KEY = 'ironhand.checkout.plan'

function pendingStore(): Storage | null {
  try {
    return typeof sessionStorage === 'undefined' ? null : sessionStorage
  } catch {
    return null
  }
}

function isPaidPlan(plan: string): plan is PaidPlan {
  return plan === 'basic' || plan === 'pro'
}

/** The page the payment provider sends the user back to. */
export function billingReturnUrl(): string {
  return `${window.location.origin}/billing`
}

/**
 * The user's subscription, kept live by `GET /billing/subscription/stream` (event
 * `subscription`, data = Subscription) from login to logout, and the plans on offer.
 */
export const useBilling = defineStore('billing', () => {
  const subscription = ref<Subscription | null>(null)
  const plans = ref<Plan[]>([])
  const connected = ref(false)
  const usage = computed(() => usageOf(subscription.value))
  let ctrl: AbortController | null = null

  onAuthChange((ok) => {
    if (!ok) stop()
  })

  async function load(): Promise<void> {
    subscription.value = await call('get', '/api/v1/billing/subscription')
  }

  async function loadPlans(): Promise<void> {
    plans.value = await call('get', '/api/v1/billing/plans', { auth: false })
  }

  /** Keeps the stream open (bounded backoff, 429 waits) until `stop()`. */
  function start(): void {
    if (ctrl) return
    const c = new AbortController()
    ctrl = c
    const toasts = useToasts()
    void keepStreamOpen({
      path: '/billing/subscription/stream',
      method: 'GET',
      signal: c.signal,
      onConnected: (on) => {
        connected.value = on
      },
      onError: (e) => toasts.error(e),
      onEvent: (ev) => {
        if (ev.event === 'subscription' && typeof ev.data.plan === 'string') {
          subscription.value = ev.data as unknown as Subscription
        }
      },
    })
  }

  function stop(): void {
    ctrl?.abort()
    ctrl = null
    connected.value = false
  }

  /** Forget everything (logout). */
  function reset(): void {
    stop()
    subscription.value = null
  }

  async function activateTrial(): Promise<void> {
    subscription.value = await call('post', '/api/v1/billing/activate-trial')
  }

  /** Starts Stripe Checkout for `plan` and leaves the app for it. */
  async function checkout(plan: string): Promise<void> {
    if (!isPaidPlan(plan)) throw new Error(`The ${plan} plan cannot be bought.`)
    const back = billingReturnUrl()
    const r = await call('post', '/api/v1/billing/create-checkout-session', {
      body: { plan, success_url: back, cancel_url: back },
    })
    pendingStore()?.setItem(PENDING_KEY, plan)
    window.location.assign(r.checkout_url)
  }

  async function openPortal(): Promise<void> {
    const r = await call('post', '/api/v1/billing/create-portal-session', { body: { return_url: billingReturnUrl() } })
    window.location.assign(r.portal_url)
  }

  /** The plan of the checkout the user just came back from (if this tab started one). */
  function pendingCheckoutPlan(): string | null {
    return pendingStore()?.getItem(PENDING_KEY) ?? null
  }

  function clearPendingCheckout(): void {
    pendingStore()?.removeItem(PENDING_KEY)
  }

  /**
   * After `?checkout=success`: resolves true once the stream shows the paid plan (the
   * webhook has been processed), false after `timeoutMs`.
   */
  function waitForPaidPlan(plan: string | null, timeoutMs: number): Promise<boolean> {
    const paid = (s: Subscription | null) =>
      !!s &&
      !s.is_trial &&
      (s.status === 'active' || s.status === 'trialing') &&
      (plan ? s.plan === plan : s.plan !== 'free')
    return new Promise((resolve) => {
      if (paid(subscription.value)) {
        resolve(true)
        return
      }
      let stopWatch: (() => void) | null = null
      const timer = setTimeout(() => {
        stopWatch?.()
        resolve(false)
      }, timeoutMs)
      stopWatch = watch(subscription, (s) => {
        if (paid(s)) {
          clearTimeout(timer)
          stopWatch?.()
          resolve(true)
        }
      })
    })
  }

  return {
    subscription,
    plans,
    connected,
    usage,
    load,
    loadPlans,
    start,
    stop,
    reset,
    activateTrial,
    checkout,
    openPortal,
    pendingCheckoutPlan,
    clearPendingCheckout,
    waitForPaidPlan,
  }
})
