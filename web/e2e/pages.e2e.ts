/**
 * Every page in light, dark and Arabic (right-to-left), at desktop and phone widths: each
 * renders without a script error, Arabic pages are `dir="rtl"`, and nothing is wider than
 * the screen. Screenshots go to a temporary directory, or to docs/screenshots with
 * `npm run screenshots` (SCREENSHOTS_DIR).
 */
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import type { Browser, Page } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { api, DESKTOP, launch, newContext, PASSWORD, PHONE, registerByApi, runTask, task, uniqueEmail, watchErrors, type Viewport } from './browser'

const outDir = process.env.SCREENSHOTS_DIR ? resolve(process.env.SCREENSHOTS_DIR) : mkdtempSync(join(tmpdir(), 'ironhand-shots-'))
mkdirSync(outDir, { recursive: true })

interface Variant {
  name: string
  locale: 'en' | 'ar'
  scheme: 'light' | 'dark'
}
const VARIANTS: Variant[] = [
  { name: 'light', locale: 'en', scheme: 'light' },
  { name: 'dark', locale: 'en', scheme: 'dark' },
  { name: 'arabic', locale: 'ar', scheme: 'light' },
]
const SIZES: [string, Viewport][] = [
  ['desktop', DESKTOP],
  ['phone', PHONE],
]

let browser: Browser
let email = ''
let story = ''
let quick = ''

beforeAll(async () => {
  browser = await launch()
  email = uniqueEmail('shots')
  const token = await registerByApi('Ada Lovelace', email)
  quick = (await api<{ session_id: string }>('PUT', '/sessions', token)).data.session_id
  await runTask(token, quick, task('quick', 'Summarise the meeting notes'))
  story = (await api<{ session_id: string }>('PUT', '/sessions', token)).data.session_id
  await runTask(token, story, task('story', 'Write the sales report for this quarter'))
  expect((await api('POST', `/sessions/${story}/share`, token)).status).toBe(200)
})
afterAll(async () => {
  await browser?.close()
  if (!process.env.SCREENSHOTS_DIR) rmSync(outDir, { recursive: true, force: true })
})

/** Settles a page: no busy region, fonts loaded, a moment for transitions. */
async function settle(page: Page): Promise<void> {
  await page.waitForFunction(() => !document.querySelector('[aria-busy="true"]'), undefined, { timeout: 10_000 }).catch(() => undefined)
  await page.evaluate(() => document.fonts.ready)
  await page.waitForTimeout(400)
}

async function check(page: Page, file: string, variant: Variant, errors: string[]): Promise<void> {
  await settle(page)
  const layout = await page.evaluate(() => ({
    dir: document.documentElement.dir || 'ltr',
    dark: document.documentElement.classList.contains('dark'),
    overflow: document.documentElement.scrollWidth - window.innerWidth,
  }))
  expect(layout.dir, `${file}: direction`).toBe(variant.locale === 'ar' ? 'rtl' : 'ltr')
  expect(layout.dark, `${file}: dark mode`).toBe(variant.scheme === 'dark')
  expect(layout.overflow, `${file}: wider than the screen`).toBeLessThanOrEqual(1)
  await page.screenshot({ path: join(outDir, `${file}.png`) })
  expect(errors, `${file}: script errors`).toEqual([])
}

describe.each(SIZES)('every page at %s width', (size, viewport) => {
  it.each(VARIANTS)('$name', async (variant) => {
    const prefs = (p: Page) =>
      p.addInitScript(([locale]) => {
        localStorage.setItem('ironhand.locale', locale as string)
      }, [variant.locale])

    // logged out: the public pages
    const guest = await newContext(browser, { viewport, colorScheme: variant.scheme })
    const g = await guest.newPage()
    await prefs(g)
    const guestErrors = watchErrors(g)
    for (const [name, path] of [
      ['login', '/login'],
      ['register', '/register'],
      ['reset', '/reset'],
      ['shared', `/share/${story}`],
      ['not-found', '/no/such/page'],
    ] as const) {
      await g.goto(path)
      if (name === 'shared') await g.getByText('The full table is in').waitFor()
      else await g.locator('h1, h2').first().waitFor()
      await check(g, `${name}-${size}-${variant.name}`, variant, guestErrors)
    }
    await guest.close()

    // logged in
    const ctx = await newContext(browser, { viewport, colorScheme: variant.scheme })
    const page = await ctx.newPage()
    await prefs(page)
    const errors = watchErrors(page)
    await page.goto('/login')
    await page.locator('input[type=email]').fill(email)
    await page.locator('input[type=password]').fill(PASSWORD)
    await page.locator('form button[type=submit]').click()
    await page.waitForURL((u) => u.pathname === '/')
    await page.locator('textarea').first().waitFor()
    await check(page, `home-${size}-${variant.name}`, variant, errors)

    await page.goto(`/chat/${story}`)
    await page.getByTestId('timeline').getByText('The full table is in').waitFor()
    await check(page, `chat-${size}-${variant.name}`, variant, errors)
    // the shell call in the panel (full-screen on a phone), its output in the terminal
    await page.locator('[data-test="tool-pill"]', { hasText: 'wc -l report.md' }).click()
    await page.locator('[data-test="tool-panel"]').getByText('report-ok').first().waitFor()
    await check(page, `terminal-${size}-${variant.name}`, variant, errors)
    if (size === 'phone') {
      await page.locator('[data-test="close-side"]').click()
      await page.locator('[data-test="menu-button"]').click()
      await page.locator('[data-test="sidebar"]').getByText('Quick task').waitFor()
      await check(page, `drawer-${size}-${variant.name}`, variant, errors)
      await page.keyboard.press('Escape')
    }
    // the task switcher
    await page.keyboard.press('Control+KeyK')
    await page.getByRole('dialog').locator('input').fill('quick')
    await page.getByRole('dialog').getByText('Quick task').waitFor()
    await check(page, `switcher-${size}-${variant.name}`, variant, errors)
    await page.keyboard.press('Escape')

    await page.goto('/billing')
    await page.locator('main h1').first().waitFor()
    await check(page, `billing-${size}-${variant.name}`, variant, errors)

    await page.goto('/settings')
    await page.locator('main h1').first().waitFor()
    await check(page, `settings-${size}-${variant.name}`, variant, errors)
    await ctx.close()
  })
})
