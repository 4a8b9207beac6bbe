/**
 * The agent's browser (scenario `browser.json`): the fake model serves a page with a button
 * from the sandbox, opens it in the agent's Chromium and clicks it, then asks the user to take
 * over. The user sees the browser calls in words with screenshots (which enlarge), takes over
 * from the question (the Browser tab opens on the live VNC canvas, interactive, with the
 * banner), a second device (a phone, after a reload) sees the same state, the user hands
 * back, replies, and the run finishes; then the tab shows the last screenshot, and the shared
 * page shows screenshots only.
 *
 * Not in the default `npm run e2e` until the server side of the browser lands: run it with
 * `npm run e2e:browser` runs it alone.
 */
import { describe, expect, it } from 'vitest'
import type { Page } from 'playwright-core'
import { newContext, PASSWORD, PHONE, registerInBrowser, startTask, task, uniqueEmail, useBrowser, watchErrors } from './browser'

const browser = useBrowser()

/** Errors the story tolerates: none, except a 409 of the live view asked before the browser ran. */
const real = (errors: string[]) => errors.filter((e) => !/status of 409/.test(e))

async function logIn(page: Page, email: string): Promise<void> {
  await page.goto('/login')
  await page.getByLabel('Email').fill(email)
  await page.getByLabel('Password').fill(PASSWORD)
  await page.getByRole('button', { name: 'Log in' }).click()
  await page.getByRole('heading', { name: 'What should the agent do?' }).waitFor()
}

/** The picture behind an <img> really loaded (a signed download of a JPEG). */
const loaded = (page: Page, selector: string) =>
  page.locator(selector).first().evaluate((img: HTMLImageElement) => img.complete && img.naturalWidth > 0)

describe('the agent\'s browser', () => {
  it('streams screenshots, shows the live view, and lets the user take over and hand back', async () => {
    const ctx = await newContext(browser())
    const page = await ctx.newPage()
    const errors = watchErrors(page)
    const sockets: string[] = []
    page.on('websocket', (ws) => sockets.push(ws.url()))
    const email = uniqueEmail('tim')
    await registerInBrowser(page, 'Tim Berners-Lee', email)
    const session = await startTask(page, task('browser', 'Open the local page and press its button'))
    const timeline = page.getByTestId('timeline')

    // the browser calls in words, each with the screenshot taken after it
    await timeline.getByText('Navigating to 127.0.0.1:8765').waitFor({ timeout: 90_000 })
    await timeline.getByText('Clicking element 1').waitFor({ timeout: 60_000 })
    const thumbs = timeline.locator('[data-test=screenshot-thumb]')
    await expect.poll(() => thumbs.count(), { timeout: 30_000 }).toBe(2)
    await expect.poll(() => loaded(page, '[data-test=screenshot-thumb] img')).toBe(true)

    // a thumbnail enlarges in a dialog; Escape closes it and focus goes back
    await thumbs.first().click()
    const dialog = page.getByRole('dialog', { name: 'Screenshot: Navigating to 127.0.0.1:8765' })
    await dialog.waitFor()
    await expect.poll(() => loaded(page, '[data-test=screenshot-large]')).toBe(true)
    await page.keyboard.press('Escape')
    await dialog.waitFor({ state: 'detached' })
    expect(await thumbs.first().evaluate((el) => el === document.activeElement)).toBe(true)

    // the agent asks, suggesting to take over the browser
    await timeline.getByText('Please press the button yourself').first().waitFor({ timeout: 60_000 })
    await page.locator('[data-test=ask-take-over]').click()

    // the Browser tab: the live canvas, interactive, with the banner
    await expect.poll(() => page.locator('[data-test=tab-browser]').getAttribute('aria-selected')).toBe('true')
    const screen = page.locator('[data-test=vnc-screen]')
    await page.locator('[data-test=browser-state][data-state=live]').waitFor({ timeout: 30_000 })
    const canvas = screen.locator('canvas')
    await canvas.waitFor()
    const box = await canvas.boundingBox()
    expect(box!.width).toBeGreaterThan(100)
    expect(box!.height).toBeGreaterThan(50)
    await page.locator('[data-test=takeover-banner]').getByText('The agent is paused').waitFor()
    expect(await screen.getAttribute('data-view-only')).toBe('false')
    await timeline.getByText('You took control of the browser.').waitFor()
    // the live view came through a WebSocket on the signed VNC path
    expect(sockets.some((u) => new RegExp(`^ws://[^/]+/api/v1/sessions/${session}/vnc\\?.*signature=`).test(u))).toBe(true)
    // the user works in the real browser (input goes through now)
    await page.mouse.click(box!.x + box!.width / 2, box!.y + box!.height / 3)

    // another device of the same user (a phone): the same state after its page load, and a
    // second viewer does not push the first one out
    const phone = await newContext(browser(), { viewport: PHONE })
    const phonePage = await phone.newPage()
    const phoneErrors = watchErrors(phonePage)
    await logIn(phonePage, email)
    await phonePage.goto(`/chat/${session}`)
    await phonePage.locator('[data-test=open-side]').click()
    await phonePage.locator('[data-test=tab-browser]').click()
    await phonePage.locator('[data-test=browser-state][data-state=live]').waitFor({ timeout: 30_000 })
    await phonePage.locator('[data-test=takeover-banner]').waitFor()
    expect(await phonePage.locator('[data-test=vnc-screen]').getAttribute('data-view-only')).toBe('false')
    const phoneBox = await phonePage.locator('[data-test=vnc-screen] canvas').boundingBox()
    expect(phoneBox!.width).toBeGreaterThan(100)
    expect(phoneBox!.x + phoneBox!.width).toBeLessThanOrEqual(PHONE.width)
    expect(await phonePage.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth)).toBe(true)
    expect(real(phoneErrors)).toEqual([])
    await phone.close()
    // the first viewer is still live
    expect(await page.locator('[data-test=browser-state]').getAttribute('data-state')).toBe('live')

    // hand back: view-only again
    await page.locator('[data-test=hand-back]').click()
    await page.locator('[data-test=takeover-banner]').waitFor({ state: 'detached' })
    expect(await screen.getAttribute('data-view-only')).toBe('true')
    await timeline.getByText('You handed the browser back to the agent.').waitFor()

    // the reply continues the run, which finishes
    await page.getByRole('textbox', { name: 'Message the agent…' }).fill('Done, I pressed it.')
    await page.getByRole('button', { name: 'Send' }).click()
    await timeline.getByText('The button was pressed').waitFor({ timeout: 60_000 })
    await timeline.getByText('Task finished.').waitFor()

    // no live view any more: the Browser tab shows the last screenshot
    await page.locator('[data-test=browser-state][data-state=screenshot]').waitFor()
    await expect.poll(() => loaded(page, '[data-test=browser-shot]')).toBe(true)
    expect(await screen.count()).toBe(0)

    // after a reload every event is there once
    await page.reload()
    await timeline.getByText('Task finished.').waitFor()
    expect(await timeline.getByText('You took control of the browser.').count()).toBe(1)
    expect(await timeline.getByText('You handed the browser back to the agent.').count()).toBe(1)
    expect(await timeline.locator('[data-test=screenshot-thumb]').count()).toBe(2)

    // the shared page: screenshots only, never the live view or its controls
    await page.getByRole('button', { name: 'Share' }).click()
    await page.getByRole('switch', { name: 'Public link' }).click()
    const link = await page.getByRole('textbox', { name: 'Link to the read-only conversation' }).inputValue()
    const stranger = await newContext(browser())
    const view = await stranger.newPage()
    const viewErrors = watchErrors(view)
    const viewRequests: string[] = []
    view.on('request', (r) => viewRequests.push(r.url()))
    view.on('websocket', (ws) => viewRequests.push(ws.url()))
    await view.goto(link)
    await view.getByText('Clicking element 1').waitFor()
    await expect.poll(() => view.locator('[data-test=screenshot-thumb]').count()).toBe(2)
    await expect.poll(() => loaded(view, '[data-test=screenshot-thumb] img')).toBe(true)
    await view.locator('[data-test=screenshot-thumb]').first().click()
    await view.getByRole('dialog').waitFor()
    await view.keyboard.press('Escape')
    for (const sel of ['browser-view', 'vnc-screen', 'take-over', 'hand-back', 'ask-take-over', 'takeover-banner']) {
      expect(await view.locator(`[data-test=${sel}]`).count(), sel).toBe(0)
    }
    expect(viewRequests.filter((u) => /\/vnc|\/takeover/.test(u))).toEqual([])
    expect(viewErrors).toEqual([])
    await stranger.close()

    expect(real(errors)).toEqual([])
    await ctx.close()
  })
})
