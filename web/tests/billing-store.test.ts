import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { clearTokens, setFetch, setTokens } from '@/api/client'
import type { Subscription } from '@/api/types'
import { useBilling } from '@/stores/billing'
import { useToasts } from '@/stores/toast'
import { flush, freshPinia, subscription } from './helpers'

/** One scripted SSE response per call of window.fetch. */
interface Stream {
  url: string
  init: RequestInit
  push: (event: string, data: unknown) => void
  close: () => void
}

function sseFetch(answer?: (n: number) => Response | null) {
  const streams: Stream[] = []
  const f = vi.fn(async (input: RequestInfo | URL, init?: RequestInit) => {
    const custom = answer?.(streams.length)
    let ctl!: ReadableStreamDefaultController<Uint8Array>
    const body = new ReadableStream<Uint8Array>({ start: (c) => (ctl = c) })
    const enc = new TextEncoder()
    streams.push({
      url: String(input),
      init: init ?? {},
      push: (event, data) => ctl.enqueue(enc.encode(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`)),
      close: () => ctl.close(),
    })
    return custom ?? new Response(body, { status: 200, headers: { 'Content-Type': 'text/event-stream' } })
  })
  vi.stubGlobal('fetch', f)
  window.fetch = f as unknown as typeof fetch
  return { f, streams }
}

async function until(cond: () => boolean, ms = 2000) {
  const t0 = Date.now()
  while (!cond()) {
    if (Date.now() - t0 > ms) throw new Error('timed out')
    await new Promise((r) => setTimeout(r, 5))
  }
}

beforeEach(() => {
  freshPinia()
  setTokens('tok', 'r1')
})
afterEach(() => {
  useBilling().stop()
  clearTokens()
  vi.unstubAllGlobals()
  vi.useRealTimers()
  sessionStorage.clear()
})

describe('billing store: live subscription', () => {
  it('GETs the stream with the bearer token and applies every `subscription` event', async () => {
    const { streams } = sseFetch()
    const b = useBilling()
    b.start()
    await until(() => streams.length === 1)
    const s = streams[0]!
    expect(s.url).toBe('/api/v1/billing/subscription/stream')
    expect(s.init.method).toBe('GET')
    expect(s.init.body).toBeUndefined()
    expect((s.init.headers as Record<string, string>).Authorization).toBe('Bearer tok')

    s.push('subscription', subscription({ monthly_agent_runs: 3 }))
    await until(() => b.subscription?.monthly_agent_runs === 3)
    expect(b.usage).toMatchObject({ level: 'ok', used: 3, limit: 10 })
    expect(b.connected).toBe(true)

    s.push('subscription', subscription({ monthly_agent_runs: 8 }))
    await until(() => b.usage.level === 'warn')
    s.push('subscription', subscription({ monthly_agent_runs: 10 }))
    await until(() => b.usage.blocked)
    // other events and junk are ignored
    s.push('something', { plan: 'pro' })
    s.push('subscription', { nope: true })
    await flush()
    expect(b.subscription?.plan).toBe('free')
  })

  it('reconnects after the server closes the stream (bounded backoff) and stops on stop()', async () => {
    const { streams } = sseFetch()
    const b = useBilling()
    b.start()
    await until(() => streams.length === 1)
    streams[0]!.push('subscription', subscription())
    await until(() => b.connected)
    streams[0]!.close()
    await until(() => !b.connected)
    // the first backoff is 1 s
    await until(() => streams.length === 2, 3000)
    streams[1]!.push('subscription', subscription({ plan: 'basic', monthly_agent_runs_limit: 1000 }))
    await until(() => b.subscription?.plan === 'basic')
    b.stop()
    expect(b.connected).toBe(false)
    streams[1]!.close()
    await new Promise((r) => setTimeout(r, 1200))
    expect(streams).toHaveLength(2)
  })

  it('a refusal (4xx) is shown, not retried', async () => {
    const { streams } = sseFetch(() =>
      new Response(JSON.stringify({ code: 403, msg: 'Not allowed.', data: null }), { status: 403, headers: { 'Content-Type': 'application/json' } }),
    )
    const b = useBilling()
    const toasts = useToasts()
    b.start()
    await until(() => toasts.toasts.length === 1)
    expect(toasts.toasts[0]!.text).toBe('Not allowed.')
    await new Promise((r) => setTimeout(r, 1200))
    expect(streams).toHaveLength(1)
  })
})

describe('billing store: back from checkout', () => {
  it('waits for the paid plan to arrive through the stream', async () => {
    const { streams } = sseFetch()
    const b = useBilling()
    b.start()
    await until(() => streams.length === 1)
    streams[0]!.push('subscription', subscription())
    await until(() => b.subscription !== null)

    let settled: boolean | null = null
    void b.waitForPaidPlan('pro', 5000).then((ok) => (settled = ok))
    // a usage change is not the confirmation
    streams[0]!.push('subscription', subscription({ monthly_agent_runs: 1 }))
    await flush()
    await flush()
    expect(settled).toBeNull()
    streams[0]!.push('subscription', subscription({ plan: 'pro', monthly_agent_runs: 0, monthly_agent_runs_limit: 5000, has_billing_account: true }))
    await until(() => settled !== null)
    expect(settled).toBe(true)
  })

  it('resolves at once when the webhook won the race, false after the timeout', async () => {
    const b = useBilling()
    b.subscription = subscription({ plan: 'basic', monthly_agent_runs_limit: 1000 })
    await expect(b.waitForPaidPlan('basic', 10)).resolves.toBe(true)
    // a trial of the same plan is not a payment
    b.subscription = subscription({ plan: 'basic', is_trial: true, status: 'trialing' })
    vi.useFakeTimers()
    const p = b.waitForPaidPlan('basic', 60_000)
    await vi.advanceTimersByTimeAsync(60_001)
    await expect(p).resolves.toBe(false)
  })

  it('checkout remembers the plan across the redirect and leaves for Stripe', async () => {
    const calls: { url: string; body: unknown }[] = []
    setFetch((async (url: string, init: RequestInit) => {
      calls.push({ url, body: JSON.parse(String(init.body)) })
      return new Response(JSON.stringify({ code: 0, msg: 'success', data: { checkout_session_id: 'cs_1', checkout_url: 'https://checkout.stripe.test/c/cs_1' } }), { status: 200 })
    }) as unknown as typeof fetch)
    const assign = vi.fn()
    vi.stubGlobal('location', { ...window.location, origin: 'http://app.example', assign })
    const b = useBilling()
    await b.checkout('pro')
    expect(calls[0]!.url).toBe('/api/v1/billing/create-checkout-session')
    expect(calls[0]!.body).toEqual({ plan: 'pro', success_url: 'http://app.example/billing', cancel_url: 'http://app.example/billing' })
    expect(assign).toHaveBeenCalledWith('https://checkout.stripe.test/c/cs_1')
    expect(b.pendingCheckoutPlan()).toBe('pro')
    b.clearPendingCheckout()
    expect(b.pendingCheckoutPlan()).toBeNull()
  })

  it('activate-trial updates the subscription; a refusal surfaces its message', async () => {
    let n = 0
    const trial: Subscription = subscription({ plan: 'pro', status: 'trialing', is_trial: true, monthly_agent_runs_limit: 50 })
    setFetch((async () =>
      n++ === 0
        ? new Response(JSON.stringify({ code: 0, msg: 'success', data: trial }), { status: 200 })
        : new Response(JSON.stringify({ code: 400, msg: 'You have already used your free trial.', data: null }), { status: 400 })) as unknown as typeof fetch)
    const b = useBilling()
    await b.activateTrial()
    expect(b.subscription).toEqual(trial)
    await expect(b.activateTrial()).rejects.toMatchObject({ status: 400, msg: 'You have already used your free trial.' })
  })
})
