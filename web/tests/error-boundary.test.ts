import { describe, expect, it, vi } from 'vitest'
import { defineComponent, h } from 'vue'
import { createMemoryHistory, createRouter } from 'vue-router'
import ErrorBoundary from '@/components/ErrorBoundary.vue'
import { useToasts } from '@/stores/toast'
import { flush, mountWith } from './helpers'

let failures = 1
const Flaky = defineComponent({
  setup() {
    if (failures > 0) {
      failures -= 1
      throw new Error('the page broke')
    }
    return () => h('p', { 'data-test': 'page' }, 'page content')
  },
})

describe('ErrorBoundary', () => {
  it('shows what failed instead of a blank page, and Try again mounts the page anew', async () => {
    const router = createRouter({ history: createMemoryHistory(), routes: [{ path: '/', component: Flaky }] })
    await router.push('/')
    vi.spyOn(console, 'error').mockImplementation(() => undefined)
    vi.spyOn(console, 'warn').mockImplementation(() => undefined)
    const w = mountWith(ErrorBoundary, { slots: { default: () => h(Flaky) }, global: { plugins: [router] } })
    await flush()
    const panel = w.get('[data-test="error-boundary"]')
    expect(panel.attributes('role')).toBe('alert')
    expect(panel.text()).toContain('This page ran into a problem.')
    expect(panel.text()).toContain('the page broke')
    expect(w.find('[data-test="page"]').exists()).toBe(false)

    await w.get('button').trigger('click')
    await flush()
    expect(w.find('[data-test="error-boundary"]').exists()).toBe(false)
    expect(w.get('[data-test="page"]').text()).toBe('page content')
  })

  it('keeps the page when only a click handler failed, and says so', async () => {
    const router = createRouter({ history: createMemoryHistory(), routes: [{ path: '/', component: Flaky }] })
    await router.push('/')
    vi.spyOn(console, 'error').mockImplementation(() => undefined)
    const Clicky = defineComponent({
      setup() {
        return () =>
          h('button', {
            'data-test': 'boom',
            onClick: () => {
              throw new Error('the click broke')
            },
          })
      },
    })
    const w = mountWith(ErrorBoundary, { slots: { default: () => h(Clicky) }, global: { plugins: [router] } })
    await w.get('[data-test="boom"]').trigger('click')
    await flush()
    expect(w.find('[data-test="error-boundary"]').exists()).toBe(false)
    expect(w.find('[data-test="boom"]').exists()).toBe(true)
    expect(useToasts().toasts.map((t) => t.text).join(' ')).toContain('the click broke')
  })
})
