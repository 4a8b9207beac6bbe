/**
 * What the model writes is hostile: scripts, event handlers and javascript:/data: links in
 * an assistant message never run and never become clickable, while the safe link stays a
 * link that opens in a new tab without an opener. The page's CSP forbids inline script.
 */
import { describe, expect, it } from 'vitest'
import { baseUrl, newContext, registerInBrowser, startTask, task, uniqueEmail, watchErrors, useBrowser } from './browser'

const browser = useBrowser()

describe('hostile output', () => {
  it('renders hostile markdown inert', async () => {
    const ctx = await newContext(browser())
    const page = await ctx.newPage()
    const errors = watchErrors(page)
    await registerInBrowser(page, 'Mallory Target', uniqueEmail('target'))
    await startTask(page, task('hostile', 'Say something'))
    const timeline = page.getByTestId('timeline')
    await timeline.getByText('Hostile answer').waitFor({ timeout: 60_000 })
    await timeline.getByText('Task finished.').waitFor()
    // give any payload a chance to fire
    await page.waitForTimeout(500)

    expect(await page.evaluate(() => (window as unknown as { __pwned?: unknown }).__pwned)).toBeUndefined()
    const answer = timeline.locator('.markdown', { hasText: 'Hostile answer' })
    expect(await answer.locator('script, iframe, object, embed, [onerror], [onload], [onclick]').count()).toBe(0)
    const hrefs = await answer.locator('a').evaluateAll((as) => as.map((a) => ({ href: a.getAttribute('href'), rel: a.getAttribute('rel'), target: a.getAttribute('target') })))
    expect(hrefs).toEqual([{ href: 'https://example.com/ok', rel: 'noopener noreferrer', target: '_blank' }])
    expect(await answer.locator('img').evaluateAll((is) => is.map((i) => i.getAttribute('src')).filter((s) => s && !/^https?:/.test(s)))).toEqual([])

    // clicking the text of the bad links does nothing either
    await answer.getByText('click me').click()
    await answer.getByText('raw anchor').click()
    await page.waitForTimeout(200)
    expect(await page.evaluate(() => (window as unknown as { __pwned?: unknown }).__pwned)).toBeUndefined()
    expect(errors.filter((e) => !e.includes('Content Security Policy'))).toEqual([])
    await ctx.close()
  })

  it('is served with a CSP that forbids inline script, and the SPA fallback for app routes', async () => {
    const index = await fetch(`${baseUrl()}/chat/does-not-matter`)
    expect(index.status).toBe(200)
    expect(index.headers.get('content-type')).toContain('text/html')
    const csp = index.headers.get('content-security-policy') ?? ''
    expect(csp).toContain("script-src 'self'")
    expect(csp).not.toContain("'unsafe-eval'")
    expect(csp).not.toMatch(/script-src[^;]*'unsafe-inline'/)
    const html = await index.text()
    expect(html).not.toMatch(/<script(?![^>]*\bsrc=)[^>]*>/)
    // an API path never falls back to the app
    const api = await fetch(`${baseUrl()}/api/v1/nothing`)
    expect(api.status).toBe(404)
    expect(((await api.json()) as { code: number }).code).toBe(404)
    // a missing file is a 404, not the app
    expect((await fetch(`${baseUrl()}/missing.png`)).status).toBe(404)
  })
})
