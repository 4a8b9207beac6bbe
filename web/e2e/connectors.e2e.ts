/**
 * Connectors (MCP servers): in Settings the user sees the operator's connector (read-only),
 * tests it (server-everything starts in a scratch sandbox and lists its tools), is refused a
 * command outside the operator's allow-list (the server's message, nothing added), adds an own
 * connector with a secret environment variable (its name shown, its value nowhere in the
 * page) and deletes it. Then the agent calls the operator's connector in a run (scenario
 * `connectors.json`): the timeline names the call "everything · get-sum", and the panel shows
 * its arguments and the server's answer, 42.
 *
 * The operator's connector is configured in e2e/global-setup.ts.
 */
import type { Page } from 'playwright-core'
import { describe, expect, it } from 'vitest'
import { api, newContext, PASSWORD, registerByApi, startTask, task, uniqueEmail, useBrowser, watchErrors } from './browser'

const browser = useBrowser()

const EVERYTHING_ARGS = ['/opt/mcp/node_modules/@modelcontextprotocol/server-everything/dist/index.js', 'stdio']
const SECRET = 'secret-e2e-1'

interface Server {
  name: string
  scope: string
  env_keys?: string[]
}

async function logIn(page: Page, email: string): Promise<void> {
  await page.goto('/login')
  await page.getByLabel('Email').fill(email)
  await page.getByLabel('Password').fill(PASSWORD)
  await page.getByRole('button', { name: 'Log in' }).click()
  await page.getByRole('heading', { name: 'What should the agent do?' }).waitFor()
}

/** The connectors' names as the API lists them: `scope:name`. */
async function listed(token: string): Promise<string[]> {
  const r = await api<Server[]>('GET', '/mcp/servers', token)
  expect(r.status).toBe(200)
  return r.data.map((s) => `${s.scope}:${s.name}`)
}

/** A button's name "Test: everything" (its ": everything" is for screen readers only). */
const forServer = (action: string, server: string) => new RegExp(`^${action}\\s*:\\s*${server}$`)

/** Everything of the page a user or a script could read: markup, text and form values. */
const pageText = (page: Page) =>
  page.evaluate(() =>
    [
      document.documentElement.outerHTML,
      document.body.innerText,
      ...Array.from(document.querySelectorAll('input, textarea'), (el) => (el as HTMLInputElement).value),
      JSON.stringify(window.localStorage),
      JSON.stringify(window.sessionStorage),
    ].join('\n'),
  )

describe('connectors', () => {
  it('lists and tests the operator’s, refuses a forbidden command, keeps an own connector’s secret hidden, and shows the agent’s MCP call', async () => {
    const ctx = await newContext(browser())
    const page = await ctx.newPage()
    const errors = watchErrors(page)
    const email = uniqueEmail('mcp')
    const token = await registerByApi('Ada Connector', email)
    await logIn(page, email)

    // Settings → Connectors: the operator's connector, read-only
    await page.getByRole('link', { name: 'Settings' }).click()
    await page.waitForURL(/\/settings$/)
    const section = page.getByRole('region', { name: 'Connectors' })
    const items = section.getByRole('listitem').filter({ has: page.locator('[data-test=connector-name]') })
    const operator = section.getByRole('listitem', { name: 'everything', exact: true })
    await operator.waitFor()
    expect(await items.count()).toBe(1)
    expect(await operator.getAttribute('data-scope')).toBe('operator')
    // the badge, with its meaning for screen readers
    const badge = operator.locator('[data-test=connector-operator]')
    expect((await badge.textContent())?.replace(/\s+/g, ' ').trim()).toBe('Operator : Set up by the operator of this server; read-only.')
    expect(await badge.getAttribute('title')).toBe('Set up by the operator of this server; read-only.')
    expect(await operator.getByText(`node ${EVERYTHING_ARGS.join(' ')}`, { exact: true }).count()).toBe(1)
    // nothing to change on it
    expect(await operator.getByRole('button', { name: /^(Edit|Delete)/ }).count()).toBe(0)
    expect(await operator.getByRole('switch').count()).toBe(0)

    // Test: the server starts in a scratch sandbox and lists its tools
    await operator.getByRole('button', { name: forServer('Test', 'everything') }).click()
    const offered = operator.getByText(/^Tools offered: \d+$/)
    await offered.waitFor({ timeout: 60_000 })
    await offered.click()
    const tools = operator.getByRole('list', { name: 'Tools of everything' })
    await tools.getByText('get-sum', { exact: true }).waitFor()
    await tools.getByText('echo', { exact: true }).waitFor()
    expect(await operator.getByText(/^Test failed/).count()).toBe(0)
    // the list is read again after a test: its status says it is ready
    await operator.getByText(/^ready/).waitFor()

    // an own connector running a command the operator does not allow: refused, nothing added
    const add = section.getByRole('button', { name: 'Add connector' })
    await add.click()
    const form = section.getByRole('form', { name: 'Add a connector' })
    await form.getByRole('textbox', { name: /^Name\b/ }).fill('shell')
    await form.getByRole('textbox', { name: /^Command\b/ }).fill('/bin/sh')
    await form.getByRole('textbox', { name: /^Arguments\b/ }).fill('-c\necho hi')
    const [refused] = await Promise.all([
      page.waitForResponse((r) => r.url().endsWith('/api/v1/mcp/servers') && r.request().method() === 'PUT'),
      form.getByRole('button', { name: 'Save connector' }).click(),
    ])
    expect(refused.status()).toBe(422)
    const alert = form.getByRole('alert')
    await alert.waitFor()
    expect(await alert.textContent()).toContain('`/bin/sh` is not a command connectors may run (allowed: npx, uvx, python3, node).')
    // the form stays open with what was typed; the list has not changed
    expect(await form.getByRole('textbox', { name: /^Command\b/ }).inputValue()).toBe('/bin/sh')
    expect(await items.count()).toBe(1)
    expect(await listed(token)).toEqual(['operator:everything'])
    await form.getByRole('button', { name: 'Cancel' }).click()
    await form.waitFor({ state: 'detached' })

    // an own stdio connector with a secret environment variable
    await add.click()
    await form.getByRole('textbox', { name: /^Name\b/ }).fill('mine')
    await form.getByRole('textbox', { name: /^Command\b/ }).fill('node')
    await form.getByRole('textbox', { name: /^Arguments\b/ }).fill(EVERYTHING_ARGS.join('\n'))
    await form.getByRole('button', { name: 'Add variable' }).click()
    await form.getByRole('textbox', { name: 'Name of entry 1' }).fill('TOKEN')
    await form.getByLabel('Value of TOKEN').fill(SECRET)
    const [saved] = await Promise.all([
      page.waitForResponse((r) => r.url().endsWith('/api/v1/mcp/servers') && r.request().method() === 'PUT'),
      form.getByRole('button', { name: 'Save connector' }).click(),
    ])
    expect(saved.status()).toBe(200)
    expect(await saved.text()).not.toContain(SECRET)
    await form.waitFor({ state: 'detached' })
    const mine = section.getByRole('listitem', { name: 'mine', exact: true })
    await mine.waitFor()
    expect(await mine.getAttribute('data-scope')).toBe('user')
    await mine.getByText('Environment variables: TOKEN', { exact: true }).waitFor()
    expect(await mine.getByText(`node ${EVERYTHING_ARGS.join(' ')}`, { exact: true }).count()).toBe(1)
    await page.getByText('The connector mine was saved.').waitFor()
    expect(await items.count()).toBe(2)
    // the value was sent once and is shown nowhere: not in the page, not in the API's answers
    expect(await pageText(page)).not.toContain(SECRET)
    const stored = await api<Server[]>('GET', '/mcp/servers', token)
    expect(JSON.stringify(stored)).not.toContain(SECRET)
    expect(stored.data.find((s) => s.name === 'mine')?.env_keys).toEqual(['TOKEN'])
    // after a reload too (the list as the server gives it)
    await page.reload()
    await mine.getByText('Environment variables: TOKEN', { exact: true }).waitFor()
    expect(await pageText(page)).not.toContain(SECRET)

    // delete it, after confirming
    await mine.getByRole('button', { name: forServer('Delete', 'mine') }).click()
    const confirm = mine.getByRole('alertdialog', { name: 'Delete the connector mine? The agent will no longer be able to use its tools.' })
    await confirm.getByRole('button', { name: 'Delete', exact: true }).click()
    await mine.waitFor({ state: 'detached' })
    await page.getByText('The connector mine was deleted.').waitFor()
    expect(await items.count()).toBe(1)
    expect(await listed(token)).toEqual(['operator:everything'])

    // the agent uses the operator's connector in a run
    await page.goto('/')
    const session = await startTask(page, task('connectors', 'Add 19 and 23'))
    await page.getByTestId('timeline').getByText('Task finished.').waitFor({ timeout: 90_000 })

    // the session page, read from the history: the call by the connector's and the tool's names
    await page.goto(`/chat/${session}`)
    const timeline = page.getByTestId('timeline')
    await timeline.getByText('19 + 23 = 42', { exact: true }).waitFor()
    const pill = timeline.locator('[data-test=tool-pill]').filter({ hasText: 'everything · get-sum' })
    await pill.waitFor()
    expect(await pill.count()).toBe(1)
    expect(await pill.locator('[data-test=tool-label]').textContent()).toBe('everything · get-sum')
    await pill.click()
    const panel = page.locator('[data-test=tool-panel]')
    expect(await panel.locator('header [data-test=tool-label]').textContent()).toBe('everything · get-sum')
    await panel.getByText('mcp__everything__get-sum').waitFor()
    const args = JSON.parse((await panel.locator('[data-test=mcp-args]').textContent()) ?? '') as unknown
    expect(args).toEqual({ a: 19, b: 23 })
    const result = panel.locator('[data-test=mcp-result]')
    await result.waitFor()
    expect(await result.textContent()).toMatch(/\b42\b/)

    // the browser reported no errors besides the refused save (a 422 in the console)
    expect(errors.filter((e) => !/status of 422/.test(e))).toEqual([])
    await ctx.close()
  })
})
