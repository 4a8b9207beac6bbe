/**
 * Too many logins show how long to wait (429), not a generic failure. Runs last (files run
 * in name order): it spends the login rate limit of 127.0.0.1 for a minute.
 */
import { describe, expect, it } from 'vitest'
import { newContext, uniqueEmail, useBrowser } from './browser'

const browser = useBrowser()

describe('rate limits', () => {
  it('tells how long to wait when logins are rate limited', async () => {
    const ctx = await newContext(browser())
    const page = await ctx.newPage()
    await page.goto('/login')
    const email = uniqueEmail('nobody')
    let shown = ''
    for (let i = 0; i < 30 && !shown; i++) {
      await page.getByLabel('Email').fill(email)
      await page.getByLabel('Password').fill('wrong password!')
      const [answer] = await Promise.all([
        page.waitForResponse((r) => r.url().endsWith('/api/v1/auth/login')),
        page.getByRole('button', { name: 'Log in' }).click(),
      ])
      const alert = page.getByRole('alert').first()
      await alert.waitFor()
      if (answer.status() === 429) {
        await page.getByText(/try again in \d+ s/).waitFor()
        shown = (await alert.textContent()) ?? ''
      }
    }
    expect(shown).toMatch(/Too many requests: try again in \d+ s\./)
    await ctx.close()
  })
})
