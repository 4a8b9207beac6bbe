import { describe, expect, it } from 'vitest'
import { RouterLinkStub } from '@vue/test-utils'
import ChatComposer from '@/components/ChatComposer.vue'
import LimitBanner from '@/components/LimitBanner.vue'
import { usageOf } from '@/lib/usage'
import { useBilling } from '@/stores/billing'
import { freshPinia, mountWith, subscription } from './helpers'

function composer(used: number, limit: number, props: Record<string, unknown> = {}) {
  const pinia = freshPinia()
  useBilling().subscription = subscription({ monthly_agent_runs: used, monthly_agent_runs_limit: limit })
  return mountWith(ChatComposer, { props: { placeholder: 'Message the agent…', submitLabel: 'Send', ...props } }, pinia)
}

async function type(w: ReturnType<typeof composer>, text: string) {
  await w.get('textarea').setValue(text)
}

describe('chat box and the run limit (GAP-BILLING-001)', () => {
  it('below the limit: enabled, the meter shows, no warning', async () => {
    const w = composer(3, 10)
    await type(w, 'do it')
    expect(w.get('textarea').attributes('disabled')).toBeUndefined()
    expect(w.get('button[type=submit]').attributes('disabled')).toBeUndefined()
    expect(w.get('[data-test=usage]').text()).toContain('3 / 10 runs')
    expect(w.find('[data-test=usage-warning]').exists()).toBe(false)
    expect(w.find('[data-test=usage-limit]').exists()).toBe(false)
    await w.get('form').trigger('submit')
    expect(w.emitted('submit')).toEqual([[{ message: 'do it', attachments: [] }]])
  })

  it('at 80 %: still enabled, with a warning and an upgrade link', async () => {
    const w = composer(8, 10)
    await type(w, 'do it')
    expect(w.get('textarea').attributes('disabled')).toBeUndefined()
    expect(w.get('button[type=submit]').attributes('disabled')).toBeUndefined()
    const warn = w.get('[data-test=usage-warning]')
    expect(warn.text()).toContain('80%')
    expect(warn.getComponent(RouterLinkStub).props('to')).toBe('/billing')
  })

  it('at the limit: the input and send are disabled, with an upgrade link', async () => {
    const w = composer(10, 10)
    expect(w.get('textarea').attributes('disabled')).toBeDefined()
    expect(w.get('textarea').attributes('placeholder')).toContain('Run limit reached')
    expect(w.get('button[type=submit]').attributes('disabled')).toBeDefined()
    const limit = w.get('[data-test=usage-limit]')
    expect(limit.text()).toContain('You have used all runs of this period')
    expect(limit.getComponent(RouterLinkStub).props('to')).toBe('/billing')
    // Enter does not send either
    await w.get('textarea').trigger('keydown', { key: 'Enter' })
    expect(w.emitted('submit')).toBeUndefined()
  })

  it('at the limit, a reply to the agent’s question (free) is still possible', async () => {
    const w = composer(10, 10, { freeReply: true })
    await type(w, 'yes, go on')
    expect(w.get('textarea').attributes('disabled')).toBeUndefined()
    await w.get('form').trigger('submit')
    expect(w.emitted('submit')).toHaveLength(1)
  })

  it('follows the live subscription: reaching the limit disables, a new plan re-enables', async () => {
    const w = composer(9, 10)
    expect(w.get('textarea').attributes('disabled')).toBeUndefined()
    const billing = useBilling()
    billing.subscription = subscription({ monthly_agent_runs: 10, monthly_agent_runs_limit: 10 })
    await w.vm.$nextTick()
    expect(w.get('textarea').attributes('disabled')).toBeDefined()
    billing.subscription = subscription({ plan: 'basic', monthly_agent_runs: 10, monthly_agent_runs_limit: 1000 })
    await w.vm.$nextTick()
    expect(w.get('textarea').attributes('disabled')).toBeUndefined()
  })

  it('unlimited plans never block; an unknown subscription does not block', async () => {
    expect(composer(5000, -1).get('[data-test=usage]').text()).toContain('5000 runs (unlimited)')
    expect(composer(5000, -1).get('textarea').attributes('disabled')).toBeUndefined()
    freshPinia()
    const w = mountWith(ChatComposer, { props: { placeholder: 'p', submitLabel: 's' } })
    expect(w.get('textarea').attributes('disabled')).toBeUndefined()
    expect(w.find('[data-test=usage]').exists()).toBe(false)
  })

  it('a busy run disables sending but not typing', async () => {
    const w = composer(1, 10, { busy: true })
    await type(w, 'next')
    expect(w.get('textarea').attributes('disabled')).toBeUndefined()
    expect(w.get('button[type=submit]').attributes('disabled')).toBeDefined()
  })

  it('restore() puts a refused message back', async () => {
    const w = composer(1, 10)
    ;(w.vm as unknown as { restore: (d: unknown) => void }).restore({ message: 'again', attachments: [{ file_id: 'f1', filename: 'a.txt' }] })
    await w.vm.$nextTick()
    expect((w.get('textarea').element as HTMLTextAreaElement).value).toBe('again')
    expect(w.text()).toContain('a.txt')
  })
})

describe('usage levels', () => {
  it('ok < 80 % ≤ warn < limit', () => {
    const lvl = (used: number, limit: number) => usageOf(subscription({ monthly_agent_runs: used, monthly_agent_runs_limit: limit })).level
    expect([lvl(7, 10), lvl(8, 10), lvl(9, 10), lvl(10, 10), lvl(11, 10), lvl(0, 0), lvl(3, -1)]).toEqual(['ok', 'warn', 'warn', 'limit', 'limit', 'limit', 'unlimited'])
    expect(usageOf(null).level).toBe('unknown')
  })

  it('a server that says limits are not enforced never blocks', () => {
    const u = usageOf({ ...subscription({ monthly_agent_runs: 12, monthly_agent_runs_limit: 10 }), limits_enforced: false } as never)
    expect(u.blocked).toBe(false)
  })
})

describe('the 402 banner', () => {
  it('shows the server’s sentence, when runs reset, and the upgrade link', () => {
    const w = mountWith(LimitBanner, {
      props: {
        msg: 'You have used all 10 runs of your Free plan for this period.',
        data: { reason: 'limit_reached', plan: 'free', used: 10, limit: 10, resets_at: '2026-02-01T00:00:00Z' },
      },
    })
    expect(w.text()).toContain('You have used all 10 runs of your Free plan for this period.')
    expect(w.text()).toMatch(/Runs reset on .*2026/)
    expect(w.getComponent(RouterLinkStub).props('to')).toBe('/billing')
    expect(w.find('[role=alert]').exists()).toBe(true)
  })
})
