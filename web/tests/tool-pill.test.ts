import { afterEach, describe, expect, it } from 'vitest'
import ToolPill from '@/components/ToolPill.vue'
import ToolPanel from '@/components/ToolPanel.vue'
import type { ToolItem } from '@/lib/tools'
import { mountWith } from './helpers'

const SHOT = '/api/v1/files/f1/download?signature=s&expires=4102444800'
function browserTool(over: Partial<ToolItem> = {}): ToolItem {
  return {
    kind: 'tool',
    key: 'b1',
    toolCallId: 'b1',
    name: 'browser',
    function: 'browser_navigate',
    args: { url: 'https://example.com/' },
    status: 'called',
    content: { screenshot: SHOT },
    timestamp: 1,
    ...over,
  }
}

async function until(cond: () => boolean, ms = 3000) {
  const t0 = Date.now()
  while (!cond()) {
    if (Date.now() - t0 > ms) throw new Error('timed out')
    await new Promise((r) => setTimeout(r, 5))
  }
}
const dialog = () => document.querySelector<HTMLElement>('[data-test=screenshot-dialog]')

afterEach(() => {
  document.body.innerHTML = ''
})

describe('browser tool pills', () => {
  it('say what the call does and show its screenshot, which enlarges in a dialog', async () => {
    const w = mountWith(ToolPill, { props: { item: browserTool() }, attachTo: document.body })
    const pill = w.get('[data-test=tool-pill]')
    expect(pill.text()).toContain('Browser')
    expect(w.get('[data-test=tool-action]').text()).toBe('Navigating to example.com')
    // the pill still opens the call in the panel
    await pill.trigger('click')
    expect(w.emitted('open')).toHaveLength(1)

    const thumb = w.get('[data-test=screenshot-thumb]')
    expect(thumb.element.tagName).toBe('BUTTON')
    expect(thumb.attributes('aria-label')).toBe('Enlarge the screenshot: Navigating to example.com')
    expect(thumb.get('img').attributes('src')).toBe(SHOT)
    expect(dialog()).toBeNull()

    ;(thumb.element as HTMLElement).focus()
    await thumb.trigger('click')
    await until(() => !!dialog())
    const d = dialog()!
    expect(d.getAttribute('role')).toBe('dialog')
    expect(d.getAttribute('aria-modal')).toBe('true')
    expect(d.querySelector('[data-test=screenshot-large]')!.getAttribute('src')).toBe(SHOT)
    expect(d.querySelector('[data-test=screenshot-large]')!.getAttribute('alt')).toBe('Screenshot: Navigating to example.com')
    expect(d.querySelector('[data-test=screenshot-caption]')!.textContent).toBe('Navigating to example.com')
    const close = d.querySelector<HTMLElement>('[data-test=screenshot-close]')!
    await until(() => document.activeElement === close)

    // Tab stays inside (the close button is its only control)
    const tab = new KeyboardEvent('keydown', { key: 'Tab', bubbles: true, cancelable: true })
    close.dispatchEvent(tab)
    expect(tab.defaultPrevented).toBe(true)
    expect(document.activeElement).toBe(close)

    // Escape closes it, and does not reach the drawer around the pill
    let reachedOutside = false
    const outside = (e: KeyboardEvent) => (reachedOutside = e.key === 'Escape')
    window.addEventListener('keydown', outside)
    close.dispatchEvent(new KeyboardEvent('keydown', { key: 'Escape', bubbles: true }))
    window.removeEventListener('keydown', outside)
    await until(() => !dialog())
    expect(reachedOutside).toBe(false)
    expect(document.activeElement).toBe(thumb.element)

    // a click beside the picture closes it too, the close button as well
    await thumb.trigger('click')
    await until(() => !!dialog())
    dialog()!.click()
    await until(() => !dialog())
    await thumb.trigger('click')
    await until(() => !!dialog())
    dialog()!.querySelector<HTMLElement>('[data-test=screenshot-close]')!.click()
    await until(() => !dialog())
    expect(document.activeElement).toBe(thumb.element)
    w.unmount()
  })

  it('show no thumbnail without a usable screenshot, or once the picture fails to load', async () => {
    for (const content of [null, {}, { screenshot: 'javascript:alert(1)' }, { screenshot: '/api/v1/auth/me' }]) {
      const w = mountWith(ToolPill, { props: { item: browserTool({ content: content as never }) } })
      expect(w.find('[data-test=screenshot-thumb]').exists()).toBe(false)
      w.unmount()
    }
    const w = mountWith(ToolPill, { props: { item: browserTool() } })
    await w.get('[data-test=screenshot-thumb] img').trigger('error')
    expect(w.find('[data-test=screenshot-thumb]').exists()).toBe(false)
    w.unmount()
  })

  it('other tools keep "function: argument"', () => {
    const w = mountWith(ToolPill, {
      props: { item: browserTool({ name: 'shell', function: 'shell_exec', args: { command: 'ls -la' }, content: null }) },
    })
    expect(w.find('[data-test=tool-action]').exists()).toBe(false)
    expect(w.get('code').text()).toBe('shell_exec: ls -la')
    expect(w.find('[data-test=screenshot-thumb]').exists()).toBe(false)
    w.unmount()
  })
})

describe('the tool panel with a browser call', () => {
  it('says what it does and enlarges the screenshot on click', async () => {
    const w = mountWith(ToolPanel, {
      props: { tools: [browserTool({ function: 'browser_click', args: { index: 3 } })], selected: null, live: false, sessionId: 's1', active: false },
      attachTo: document.body,
    })
    expect(w.get('[data-test=tool-summary]').text()).toBe('Clicking element 3')
    expect(w.get('[data-test=tool-summary]').attributes('title')).toBe('browser_click')
    const enlarge = w.get('[data-test=screenshot-enlarge]')
    await enlarge.trigger('click')
    await until(() => !!dialog())
    expect(dialog()!.getAttribute('aria-label')).toBe('Screenshot: Clicking element 3')
    dialog()!.dispatchEvent(new KeyboardEvent('keydown', { key: 'Escape', bubbles: true }))
    await until(() => !dialog())
    await w.get('[data-test=screenshot]').trigger('error')
    expect(w.get('[data-test=screenshot-gone]').text()).toBe('The screenshot is no longer available.')
    w.unmount()
  })
})
