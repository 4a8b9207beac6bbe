import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { clearTokens, setFetch, setTokens } from '@/api/client'
import type { ListSessionItem } from '@/api/types'
import SharePopover from '@/components/SharePopover.vue'
import { useSessions } from '@/stores/sessions'
import { useToasts } from '@/stores/toast'
import { flush, freshPinia, mountWith } from './helpers'

const json = (data: unknown, status = 200, code = 0, msg = 'success') =>
  new Response(JSON.stringify({ code, msg, data }), { status, headers: { 'Content-Type': 'application/json' } })

let requests: { method: string; url: string }[] = []
let shared = false

beforeEach(() => {
  requests = []
  shared = false
  setTokens('tok', 'ref')
  setFetch((async (url: string, init: RequestInit = {}) => {
    const method = init.method ?? 'GET'
    requests.push({ method, url })
    if (url === '/api/v1/sessions/s1/share' && method === 'POST') {
      shared = true
      return json({ session_id: 's1', is_shared: true })
    }
    if (url === '/api/v1/sessions/s1/share' && method === 'DELETE') {
      shared = false
      return json({ session_id: 's1', is_shared: false })
    }
    if (url === '/api/v1/sessions/s1' && method === 'GET') return json({ session_id: 's1', title: 'T', status: 'completed', events: [], is_shared: shared })
    return json(null, 404, 404, 'Not found')
  }) as unknown as typeof fetch)
})
afterEach(() => {
  clearTokens()
  document.body.innerHTML = ''
})

async function mounted(props: { sessionId: string; shared?: boolean }) {
  const pinia = freshPinia()
  const w = mountWith(SharePopover, { props, attachTo: document.body }, pinia)
  await w.get('[data-test=share-button]').trigger('click')
  await flush()
  return w
}

describe('share popover', () => {
  it('opens with focus inside, shares and stops sharing with the right requests', async () => {
    const w = await mounted({ sessionId: 's1', shared: false })
    expect(w.get('[data-test=share-button]').attributes('aria-expanded')).toBe('true')
    const toggle = w.get('[data-test=share-toggle]')
    expect(document.activeElement).toBe(toggle.element)
    expect(toggle.attributes('aria-checked')).toBe('false')
    expect(w.find('[data-test=share-link]').exists()).toBe(false)
    // the initial state came from the prop: nothing was asked
    expect(requests).toHaveLength(0)

    await toggle.trigger('click')
    await flush()
    expect(requests).toEqual([{ method: 'POST', url: '/api/v1/sessions/s1/share' }])
    expect(w.get('[data-test=share-toggle]').attributes('aria-checked')).toBe('true')
    const url = w.get('[data-test=share-url]')
    expect((url.element as HTMLInputElement).value).toBe(`${location.origin}/share/s1`)
    expect(url.attributes('readonly')).toBeDefined()
    const open = w.get('[data-test=share-open]')
    expect(open.attributes('href')).toBe(`${location.origin}/share/s1`)
    expect(open.attributes('target')).toBe('_blank')
    expect(open.attributes('rel')).toBe('noopener noreferrer')
    expect(w.emitted('update:shared')).toEqual([[true]])

    await w.get('[data-test=share-toggle]').trigger('click')
    await flush()
    expect(requests[1]).toEqual({ method: 'DELETE', url: '/api/v1/sessions/s1/share' })
    expect(w.get('[data-test=share-toggle]').attributes('aria-checked')).toBe('false')
    expect(w.find('[data-test=share-link]').exists()).toBe(false)
    expect(w.emitted('update:shared')).toEqual([[true], [false]])
    w.unmount()
  })

  it('Escape closes and gives the focus back to the button', async () => {
    const w = await mounted({ sessionId: 's1', shared: true })
    expect(w.find('[data-test=share-popover]').exists()).toBe(true)
    await w.get('[data-test=share-toggle]').trigger('keydown', { key: 'Escape' })
    expect(w.find('[data-test=share-popover]').exists()).toBe(false)
    expect(w.get('[data-test=share-button]').attributes('aria-expanded')).toBe('false')
    expect(document.activeElement).toBe(w.get('[data-test=share-button]').element)
    w.unmount()
  })

  it('a click outside closes it', async () => {
    const outside = document.createElement('button')
    document.body.appendChild(outside)
    const w = await mounted({ sessionId: 's1', shared: true })
    // a click inside keeps it open
    w.get('[data-test=share-url]').element.dispatchEvent(new Event('pointerdown', { bubbles: true }))
    await flush()
    expect(w.find('[data-test=share-popover]').exists()).toBe(true)
    outside.dispatchEvent(new Event('pointerdown', { bubbles: true }))
    await flush()
    expect(w.find('[data-test=share-popover]').exists()).toBe(false)
    w.unmount()
  })

  it('copies the link, or selects it when the clipboard is not available', async () => {
    const writeText = vi.fn(async () => {})
    Object.defineProperty(navigator, 'clipboard', { value: { writeText }, configurable: true })
    const w = await mounted({ sessionId: 's1', shared: true })
    await w.get('[data-test=share-copy]').trigger('click')
    await flush()
    expect(writeText).toHaveBeenCalledWith(`${location.origin}/share/s1`)
    expect(w.get('[data-test=share-copy]').text()).toBe('Copied')

    Object.defineProperty(navigator, 'clipboard', { value: { writeText: vi.fn(async () => Promise.reject(new Error('denied'))) }, configurable: true })
    await w.get('[data-test=share-copy]').trigger('click')
    await flush()
    const input = w.get('[data-test=share-url]').element as HTMLInputElement
    expect(document.activeElement).toBe(input)
    expect(input.selectionStart).toBe(0)
    expect(input.selectionEnd).toBe(input.value.length)
    expect(w.text()).toContain('press Ctrl+C')
    Object.defineProperty(navigator, 'clipboard', { value: undefined, configurable: true })
    w.unmount()
  })

  it('without the prop, learns the state from the sidebar list or the session', async () => {
    const pinia = freshPinia()
    useSessions().items = [
      { session_id: 's1', title: 'T', latest_message: '', latest_message_at: 0, updated_at: 0, status: 'completed', unread_message_count: 0, is_shared: true } as ListSessionItem,
    ]
    const w = mountWith(SharePopover, { props: { sessionId: 's1' }, attachTo: document.body }, pinia)
    await w.get('[data-test=share-button]').trigger('click')
    await flush()
    expect(requests).toHaveLength(0)
    expect(w.get('[data-test=share-toggle]').attributes('aria-checked')).toBe('true')
    w.unmount()

    shared = true
    const w2 = mountWith(SharePopover, { props: { sessionId: 's1' }, attachTo: document.body }, freshPinia())
    await w2.get('[data-test=share-button]').trigger('click')
    await flush()
    await flush()
    expect(requests).toEqual([{ method: 'GET', url: '/api/v1/sessions/s1' }])
    expect(w2.get('[data-test=share-toggle]').attributes('aria-checked')).toBe('true')
    expect(document.activeElement).toBe(w2.get('[data-test=share-toggle]').element)
    w2.unmount()
  })

  it('a failed request is a toast and leaves the state as it was', async () => {
    setFetch((async () => json(null, 500, 500, 'Database unavailable')) as unknown as typeof fetch)
    const w = await mounted({ sessionId: 's1', shared: false })
    await w.get('[data-test=share-toggle]').trigger('click')
    await flush()
    expect(useToasts().toasts[0]).toMatchObject({ kind: 'error', text: 'Database unavailable' })
    expect(w.get('[data-test=share-toggle]').attributes('aria-checked')).toBe('false')
    w.unmount()
  })
})
