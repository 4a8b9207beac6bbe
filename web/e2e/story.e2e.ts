/**
 * The main story in a real browser: register, hand the agent a task, watch the plan, the
 * steps, the tool output and the answer stream in, reload mid-run and see the timeline go
 * on without duplicates, download the result file, share the task and open the link in a
 * logged-out window. Nothing sensitive is left in web storage.
 */
import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { newContext, registerInBrowser, startTask, task, uniqueEmail, watchErrors, useBrowser } from './browser'

const browser = useBrowser()

describe('a user hands the agent a task', () => {
  it('streams it live, survives a reload mid-run, downloads the result and shares it', async () => {
    const ctx = await newContext(browser())
    const page = await ctx.newPage()
    const errors = watchErrors(page)
    await registerInBrowser(page, 'Ada Lovelace', uniqueEmail('ada'))

    await startTask(page, task('story', 'Write the sales report'))
    const timeline = page.getByTestId('timeline')
    // the user's message, then the plan and the first tool calls, while the run goes on
    await timeline.getByText('Write the sales report').waitFor()
    await page.getByTestId('plan').getByText('Write the report and check it').waitFor()
    await timeline.getByText('wc -l report.md').first().waitFor()
    // still running: the answer has not come yet
    expect(await timeline.getByText('The full table is in').count()).toBe(0)

    // reload in the middle of the run: the history is read, then the stream attaches
    await page.reload()
    await timeline.getByText('wc -l report.md').waitFor()
    await timeline.getByText('Working…').waitFor()
    await timeline.getByText('The full table is in').waitFor({ timeout: 60_000 })
    await timeline.getByText('Task finished.').waitFor()

    // every event exactly once
    expect(await timeline.getByText('Write the sales report').count()).toBe(1)
    expect(await timeline.getByText('north leads with 120').count()).toBe(1)
    expect(await timeline.getByText('The full table is in').count()).toBe(1)
    expect(await timeline.getByText('wc -l report.md').count()).toBe(1)
    expect(await timeline.getByText('Task finished.').count()).toBe(1)
    // markdown rendered
    expect(await timeline.locator('strong', { hasText: 'sales report' }).count()).toBe(1)

    // the tool output is there when the call is opened
    await timeline.getByText('wc -l report.md').click()
    await page.getByText('report-ok').first().waitFor()

    // download the file the agent attached to its answer
    const [download] = await Promise.all([
      page.waitForEvent('download'),
      timeline.getByRole('link', { name: 'Download report.md' }).first().click(),
    ])
    expect(download.suggestedFilename()).toBe('report.md')
    const saved = await download.path()
    expect(readFileSync(saved, 'utf8')).toContain('| north | 120 |')

    // tokens live in memory and in the HttpOnly cookie, never in web storage
    const storage = await page.evaluate(() => ({
      local: JSON.stringify(window.localStorage),
      session: JSON.stringify(window.sessionStorage),
      cookie: document.cookie,
    }))
    for (const s of [storage.local, storage.session, storage.cookie]) {
      expect(s).not.toMatch(/eyJ[\w-]+\.[\w-]+/)
      expect(s.toLowerCase()).not.toContain('refresh')
    }
    const cookies = await ctx.cookies()
    const refresh = cookies.find((c) => c.name === 'ironhand_refresh')
    expect(refresh?.httpOnly).toBe(true)

    // share, then open the link in a logged-out window
    await page.getByRole('button', { name: 'Share' }).click()
    const toggle = page.getByRole('switch', { name: 'Public link' })
    expect(await toggle.getAttribute('aria-checked')).toBe('false')
    await toggle.click()
    await page.getByText('Anyone with the link can read this conversation').waitFor()
    const link = await page.getByRole('textbox', { name: 'Link to the read-only conversation' }).inputValue()
    expect(link).toMatch(/\/share\/[0-9a-f-]+$/)

    const stranger = await newContext(browser())
    const view = await stranger.newPage()
    const viewErrors = watchErrors(view)
    await view.goto(link)
    await view.getByText('The full table is in').waitFor()
    await view.getByText('Sales report').first().waitFor()
    expect(await view.getByRole('textbox').count()).toBe(0)
    expect(viewErrors).toEqual([])
    await stranger.close()

    expect(errors).toEqual([])
    await ctx.close()
  })

  it('stops a run on request and frees the message box', async () => {
    const ctx = await newContext(browser())
    const page = await ctx.newPage()
    const errors = watchErrors(page)
    await registerInBrowser(page, 'Grace Hopper', uniqueEmail('grace'))
    await startTask(page, task('slow', 'Think about it'))
    const timeline = page.getByTestId('timeline')
    await timeline.getByText('echo thinking').first().waitFor()
    await page.getByRole('button', { name: /Stop/ }).click()
    await timeline.getByText('Task finished.').waitFor()
    // the stream closes a moment after `done`: the Stop button goes with it
    await page.getByRole('button', { name: /Stop/ }).waitFor({ state: 'detached' })
    const box = page.getByRole('textbox', { name: 'Message the agent…' })
    await box.fill('and now?')
    await expect.poll(() => page.getByRole('button', { name: 'Send' }).isEnabled()).toBe(true)
    expect(errors).toEqual([])
    await ctx.close()
  })
})
