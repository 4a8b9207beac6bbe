/**
 * Limits in the browser: at the plan's run limit the message box is disabled with an
 * upgrade link (GAP-BILLING-001).
 */
import { describe, expect, it } from 'vitest'
import { api, newContext, PASSWORD, registerByApi, runTask, task, uniqueEmail, useBrowser, watchErrors } from './browser'

const browser = useBrowser()

describe('limits', () => {
  it('disables the message box at the run limit, with an upgrade link', async () => {
    const email = uniqueEmail('busy')
    const token = await registerByApi('Busy Bee', email)
    const sub = await api<{ monthly_agent_runs_limit: number }>('GET', '/billing/subscription', token)
    const limit = sub.data.monthly_agent_runs_limit
    let session = ''
    for (let i = 0; i < limit; i++) {
      session = (await api<{ session_id: string }>('PUT', '/sessions', token)).data.session_id
      await runTask(token, session, task('quick', `run ${i}`))
    }

    const ctx = await newContext(browser())
    const page = await ctx.newPage()
    const errors = watchErrors(page)
    await page.goto('/login')
    await page.getByLabel('Email').fill(email)
    await page.getByLabel('Password').fill(PASSWORD)
    await page.getByRole('button', { name: 'Log in' }).click()
    await page.getByRole('heading', { name: 'What should the agent do?' }).waitFor()

    await page.goto(`/chat/${session}`)
    const box = page.getByRole('textbox', { name: 'Message the agent…' })
    await page.getByPlaceholder('Run limit reached: upgrade your plan to start new tasks.').waitFor()
    expect(await box.isDisabled()).toBe(true)
    const upgrade = page.getByRole('link', { name: 'Upgrade your plan' }).first()
    expect(await upgrade.getAttribute('href')).toBe('/billing')
    await page.getByText(`${limit} / ${limit}`).first().waitFor()
    await upgrade.click()
    await page.waitForURL(/\/billing$/)
    expect(errors).toEqual([])
    await ctx.close()
  })
})
