import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { defineComponent, h } from 'vue'
import { createMemoryHistory, createRouter, type Router } from 'vue-router'
import type { ListSessionItem } from '@/api/types'
import AppLayout from '@/components/AppLayout.vue'
import CommandPalette from '@/components/CommandPalette.vue'
import { useBilling } from '@/stores/billing'
import { useSessions } from '@/stores/sessions'
import { flush, freshPinia, mountWith } from './helpers'

const Blank = defineComponent({ setup: () => () => h('div', { 'data-test': 'page' }, 'page') })

function makeRouter(): Router {
  return createRouter({
    history: createMemoryHistory(),
    routes: [
      { path: '/', name: 'home', component: Blank },
      { path: '/chat/:id', name: 'chat', component: Blank },
      { path: '/settings', name: 'settings', component: Blank },
      { path: '/billing', name: 'billing', component: Blank },
    ],
  })
}

function item(id: string, title: string, latest: string, over: Partial<ListSessionItem> = {}): ListSessionItem {
  const base = { session_id: id, title, latest_message: latest, latest_message_at: 1, updated_at: 1, status: 'completed', unread_message_count: 0, is_shared: false }
  return { ...base, ...over } as ListSessionItem
}

function seed() {
  useSessions().items = [
    item('s1', 'Quarterly report', 'Here is the PDF'),
    item('s2', 'Trip to Lisbon', 'Flights booked for May', { status: 'running', unread_message_count: 2 }),
    item('s3', '', 'scrape the prices'),
  ]
}

const key = (k: string, o: KeyboardEventInit = {}) => window.dispatchEvent(new KeyboardEvent('keydown', { key: k, bubbles: true, ...o }))

afterEach(() => {
  document.body.innerHTML = ''
})

describe('command palette', () => {
  let router: Router
  beforeEach(async () => {
    router = makeRouter()
    await router.push('/')
    await router.isReady()
  })

  function palette() {
    const pinia = freshPinia()
    seed()
    return mountWith(CommandPalette, { props: { open: true }, attachTo: document.body, global: { plugins: [router] } }, pinia)
  }

  it('filters by title and latest message, and opens the chosen task with Enter', async () => {
    const w = palette()
    await flush()
    const input = w.get('[data-test=palette-input]')
    expect(document.activeElement).toBe(input.element)
    // no query: "New task" first, then every task
    expect(w.findAll('[role=option]').map((o) => o.attributes('data-test'))).toEqual(['palette-new', 'palette-item', 'palette-item', 'palette-item'])

    await input.setValue('lisbon')
    expect(w.findAll('[data-test=palette-item]').map((o) => o.text())).toEqual([expect.stringContaining('Trip to Lisbon')])
    // by latest message, case-insensitive, all words
    await input.setValue('PDF here')
    expect(w.findAll('[data-test=palette-item]').map((o) => o.text())).toEqual([expect.stringContaining('Quarterly report')])
    // untitled tasks match their latest message
    await input.setValue('prices')
    expect(w.findAll('[data-test=palette-item]').map((o) => o.text())).toEqual([expect.stringContaining('Untitled task')])
    await input.setValue('nothing like this')
    expect(w.find('[data-test=palette-item]').exists()).toBe(false)
    expect(w.get('[data-test=palette-empty]').text()).toBe('No matching tasks.')
    expect(w.find('[data-test=palette-new]').exists()).toBe(true)

    await input.setValue('o')
    // the matches come first; arrows move, Enter opens
    expect(w.findAll('[role=option]')[0]!.attributes('aria-selected')).toBe('true')
    await input.trigger('keydown', { key: 'ArrowDown' })
    const opts = w.findAll('[role=option]')
    expect(opts[1]!.attributes('aria-selected')).toBe('true')
    expect(input.attributes('aria-activedescendant')).toBe(opts[1]!.attributes('id'))
    expect(opts[1]!.text()).toContain('Trip to Lisbon')
    await input.trigger('keydown', { key: 'Enter' })
    await flush()
    expect(router.currentRoute.value.fullPath).toBe('/chat/s2')
    expect(w.emitted('update:open')).toEqual([[false]])
  })

  it('"New task" opens home; ArrowUp wraps around', async () => {
    await router.push('/chat/s1')
    const w = palette()
    await flush()
    const input = w.get('[data-test=palette-input]')
    await input.trigger('keydown', { key: 'ArrowUp' })
    expect(w.findAll('[role=option]').at(-1)!.attributes('aria-selected')).toBe('true')
    await input.trigger('keydown', { key: 'ArrowDown' })
    expect(w.get('[data-test=palette-new]').attributes('aria-selected')).toBe('true')
    await input.trigger('keydown', { key: 'Enter' })
    await flush()
    expect(router.currentRoute.value.name).toBe('home')
  })

  it('Escape and the backdrop close it', async () => {
    const w = palette()
    await flush()
    await w.get('[data-test=palette-input]').trigger('keydown', { key: 'Escape' })
    expect(w.emitted('update:open')).toEqual([[false]])
    await w.get('[data-test=palette-backdrop]').trigger('click')
    expect(w.emitted('update:open')).toEqual([[false], [false]])
    expect(router.currentRoute.value.fullPath).toBe('/')
  })
})

describe('app layout', () => {
  let router: Router
  beforeEach(async () => {
    router = makeRouter()
    await router.push('/')
    await router.isReady()
  })

  function layout() {
    const pinia = freshPinia()
    // no live streams in these tests
    const sessions = useSessions()
    sessions.start = vi.fn()
    sessions.stop = vi.fn()
    const billing = useBilling()
    billing.start = vi.fn()
    billing.stop = vi.fn()
    seed()
    // real links (with href), as in the app
    return mountWith(AppLayout, { attachTo: document.body, global: { plugins: [router], stubs: { RouterLink: false } } }, pinia)
  }

  it('phones: the drawer opens from the menu button and closes on the backdrop, Escape and navigation', async () => {
    const w = layout()
    await flush()
    const sidebar = w.get('[data-test=sidebar]')
    const menu = w.get('[data-test=menu-button]')
    expect(sidebar.attributes('data-open')).toBe('false')
    expect(sidebar.classes()).toContain('max-lg:-translate-x-full')
    // right-to-left: it slides out to the other side
    expect(sidebar.classes()).toContain('max-lg:rtl:translate-x-full')
    expect(sidebar.classes()).toContain('start-0')
    expect(w.find('[data-test=drawer-backdrop]').exists()).toBe(false)

    await menu.trigger('click')
    await flush()
    expect(sidebar.attributes('data-open')).toBe('true')
    expect(sidebar.attributes('role')).toBe('dialog')
    expect(sidebar.attributes('aria-modal')).toBe('true')
    expect(menu.attributes('aria-expanded')).toBe('true')
    expect(document.activeElement).toBe(w.get('[data-test=drawer-close]').element)
    // the page behind is inert while it is open
    expect(w.get('main').attributes('inert')).toBeDefined()

    // Tab stays inside
    const inside = Array.from(sidebar.element.querySelectorAll<HTMLElement>('a[href], button, select'))
    expect(inside.length).toBeGreaterThan(5)
    inside.at(-1)!.focus()
    await sidebar.trigger('keydown', { key: 'Tab' })
    expect(document.activeElement).toBe(inside[0])
    await sidebar.trigger('keydown', { key: 'Tab', shiftKey: true })
    expect(document.activeElement).toBe(inside.at(-1))

    await w.get('[data-test=drawer-backdrop]').trigger('click')
    await flush()
    expect(sidebar.attributes('data-open')).toBe('false')
    expect(w.find('[data-test=drawer-backdrop]').exists()).toBe(false)
    expect(w.get('main').attributes('inert')).toBeUndefined()

    await menu.trigger('click')
    await flush()
    key('Escape')
    await flush()
    expect(sidebar.attributes('data-open')).toBe('false')
    expect(document.activeElement).toBe(menu.element)

    await menu.trigger('click')
    await flush()
    await router.push('/chat/s2')
    await flush()
    expect(sidebar.attributes('data-open')).toBe('false')
    w.unmount()
  })

  it('Ctrl+K and ⌘K open the quick switcher; the listener goes away with the layout', async () => {
    const w = layout()
    await flush()
    expect(w.find('[data-test=palette]').exists()).toBe(false)
    key('k', { ctrlKey: true })
    await flush()
    expect(w.find('[data-test=palette]').exists()).toBe(true)
    expect(document.activeElement).toBe(w.get('[data-test=palette-input]').element)
    await w.get('[data-test=palette-input]').trigger('keydown', { key: 'Escape' })
    expect(w.find('[data-test=palette]').exists()).toBe(false)
    key('K', { metaKey: true })
    await flush()
    expect(w.find('[data-test=palette]').exists()).toBe(true)
    await w.get('[data-test=palette-input]').setValue('quarterly')
    await w.get('[data-test=palette-input]').trigger('keydown', { key: 'Enter' })
    await flush()
    expect(router.currentRoute.value.fullPath).toBe('/chat/s1')
    expect(w.find('[data-test=palette]').exists()).toBe(false)

    // the sidebar's button opens it too
    await w.get('[data-test=open-palette]').trigger('click')
    expect(w.find('[data-test=palette]').exists()).toBe(true)

    const remove = vi.spyOn(window, 'removeEventListener')
    w.unmount()
    expect(remove).toHaveBeenCalledWith('keydown', expect.any(Function))
    remove.mockRestore()
    // nothing listens any more
    expect(() => key('k', { ctrlKey: true })).not.toThrow()
  })

  it('the sidebar: settings link, delete buttons reachable without hover, status and unread kept', async () => {
    const w = layout()
    await flush()
    expect(w.get('[data-test=settings-link]').text()).toBe('Settings')
    const del = w.findAll('[data-test=delete-session]')
    expect(del).toHaveLength(3)
    expect(del[1]!.attributes('aria-label')).toBe('Delete: Trip to Lisbon')
    // shown on focus and on touch screens, not only on hover
    expect(del[1]!.classes()).toEqual(expect.arrayContaining(['group-focus-within:opacity-100', 'focus-visible:opacity-100', '[@media(hover:none)]:opacity-100']))
    const row = w.findAll('[data-test=session-item]')[1]!
    expect(row.text()).toContain('2')
    expect(row.find('[title=running]').exists()).toBe(true)
    w.unmount()
  })
})
