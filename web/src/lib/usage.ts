/** The run meter of a subscription, as the UI shows it (GAP-BILLING-001). */
import type { Subscription } from '@/api/types'

/** Warn from this fraction of the monthly runs on. */
export const WARN_RATIO = 0.8

export type UsageLevel = 'unknown' | 'unlimited' | 'ok' | 'warn' | 'limit'

export interface Usage {
  level: UsageLevel
  used: number
  /** -1 = unlimited */
  limit: number
  /** 0…1 (capped), for the bar */
  ratio: number
  /** new runs are refused (the input is disabled) */
  blocked: boolean
  periodEnd: string | null
}

/**
 * `limits_enforced` is not in the contract's Subscription; if the server ever sends
 * `false` (billing off: usage counted, not enforced), the UI still shows the meter but
 * never blocks or warns.
 */
function enforced(sub: Subscription): boolean {
  return (sub as { limits_enforced?: unknown }).limits_enforced !== false
}

export function usageOf(sub: Subscription | null | undefined): Usage {
  if (!sub) return { level: 'unknown', used: 0, limit: 0, ratio: 0, blocked: false, periodEnd: null }
  const used = Math.max(0, sub.monthly_agent_runs)
  const limit = sub.monthly_agent_runs_limit
  const periodEnd = sub.current_period_end || null
  if (limit < 0) return { level: 'unlimited', used, limit: -1, ratio: 0, blocked: false, periodEnd }
  const ratio = limit === 0 ? 1 : Math.min(1, used / limit)
  if (!enforced(sub)) return { level: 'ok', used, limit, ratio, blocked: false, periodEnd }
  const level: UsageLevel = used >= limit ? 'limit' : used >= WARN_RATIO * limit ? 'warn' : 'ok'
  return { level, used, limit, ratio, blocked: level === 'limit', periodEnd }
}

/**
 * Whether to offer the trial: free plan only, once per user. The contract's Subscription
 * does not say whether the trial was used; `trial_used` is read if the server sends it,
 * otherwise the button shows and the server's 400 ("already used") is shown on click.
 */
export function trialAvailable(sub: Subscription | null | undefined): boolean {
  if (!sub || sub.plan !== 'free' || sub.is_trial) return false
  return (sub as { trial_used?: unknown }).trial_used !== true
}

/** Checkout can sell a plan to this user (no paid subscription running). */
export function mayCheckout(sub: Subscription | null | undefined): boolean {
  if (!sub) return false
  return sub.plan === 'free' || sub.is_trial || sub.status === 'canceled' || sub.status === 'incomplete'
}
