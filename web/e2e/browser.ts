/**
 * Debian's Chromium driven by playwright-core (no downloaded browsers), and small helpers
 * the browser stories share: a fresh user, the API from Node, waiting for a run.
 */
import { existsSync } from 'node:fs'
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core'
import { afterAll, beforeAll, expect, inject } from 'vitest'

export const baseUrl = (): string => inject('baseUrl')

function executable(): string {
  const candidates = [process.env.IRONHAND_CHROMIUM, '/usr/bin/chromium', '/usr/bin/chromium-browser', '/usr/bin/google-chrome']
  const found = candidates.find((p): p is string => !!p && existsSync(p))
  if (!found) throw new Error('no Chromium: run scripts/install-browser-deps.sh (make test does)')
  return found
}

export async function launch(): Promise<Browser> {
  return chromium.launch({
    executablePath: executable(),
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--disable-dev-shm-usage',
    ],
  })
}

export interface Viewport {
  width: number
  height: number
}
export const DESKTOP: Viewport = { width: 1280, height: 800 }
export const PHONE: Viewport = { width: 390, height: 844 }

/** A new logged-out browser window. Page errors and failed dialogs fail the story. */
export async function newContext(
  browser: Browser,
  opts: { viewport?: Viewport; locale?: string; colorScheme?: 'light' | 'dark' } = {},
): Promise<BrowserContext> {
  const ctx = await browser.newContext({
    baseURL: baseUrl(),
    viewport: opts.viewport ?? DESKTOP,
    locale: opts.locale ?? 'en-US',
    colorScheme: opts.colorScheme ?? 'light',
    acceptDownloads: true,
    isMobile: (opts.viewport ?? DESKTOP).width < 600,
    hasTouch: (opts.viewport ?? DESKTOP).width < 600,
  })
  ctx.setDefaultTimeout(20_000)
  return ctx
}

/** Console errors and uncaught exceptions of a page, for stories to assert on. */
export function watchErrors(page: Page): string[] {
  const errors: string[] = []
  page.on('pageerror', (e) => errors.push(`pageerror: ${e.message}`))
  page.on('console', (m) => {
    if (m.type() === 'error') errors.push(`console: ${m.text()}`)
  })
  page.on('dialog', (d) => {
    errors.push(`dialog: ${d.type()} ${d.message()}`)
    void d.dismiss()
  })
  return errors
}

let counter = 0
export function uniqueEmail(prefix: string): string {
  counter += 1
  return `${prefix}-${Date.now().toString(36)}-${counter}@example.com`
}
export const PASSWORD = 'correct horse battery'

/** Registers through the page; ends on the home page. */
export async function registerInBrowser(page: Page, name: string, email: string): Promise<void> {
  await page.goto('/register')
  await page.getByLabel('Full name').fill(name)
  await page.getByLabel('Email').fill(email)
  await page.getByLabel('Password').fill(PASSWORD)
  await page.getByRole('button', { name: 'Create account' }).click()
  await page.getByRole('heading', { name: 'What should the agent do?' }).waitFor()
}

/** Starts a task from the home page; resolves with the session id once on its chat page. */
export async function startTask(page: Page, text: string): Promise<string> {
  await page.getByRole('textbox', { name: 'Describe a task…' }).fill(text)
  await page.getByRole('button', { name: 'Start', exact: true }).click()
  await page.waitForURL(/\/chat\/[^/]+$/)
  return new URL(page.url()).pathname.split('/').pop() ?? ''
}

/** A task text that picks a fake-model scenario; unique, so each run has its own script. */
export function task(scenario: string, words: string): string {
  counter += 1
  return `[scenario:${scenario}] ${words} (${Date.now().toString(36)}-${counter})`
}

/** The API from Node, as another client of the same server would use it. */
export async function api<T = unknown>(method: string, path: string, token?: string, body?: unknown): Promise<{ status: number; code: number; msg: string; data: T }> {
  const res = await fetch(`${baseUrl()}/api/v1${path}`, {
    method,
    headers: {
      ...(body !== undefined ? { 'Content-Type': 'application/json' } : {}),
      ...(token ? { Authorization: `Bearer ${token}` } : {}),
    },
    body: body !== undefined ? JSON.stringify(body) : undefined,
  })
  const env = (await res.json()) as { code: number; msg: string; data: T }
  return { status: res.status, ...env }
}

export async function registerByApi(name: string, email: string): Promise<string> {
  const r = await api<{ access_token: string }>('POST', '/auth/register', undefined, { fullname: name, email, password: PASSWORD })
  if (r.status !== 200) throw new Error(`register: ${r.status} ${r.msg}`)
  return r.data.access_token
}

/** Waits until the session's run is over (through the API). */
export async function waitIdle(token: string, sessionId: string, timeoutMs = 60_000): Promise<string> {
  const until = Date.now() + timeoutMs
  for (;;) {
    const r = await api<{ status: string }>('GET', `/sessions/${sessionId}`, token)
    if (r.status === 200 && ['completed', 'failed'].includes(r.data.status)) return r.data.status
    if (Date.now() > until) throw new Error(`session ${sessionId} still ${r.data?.status} after ${timeoutMs} ms`)
    await new Promise((ok) => setTimeout(ok, 250))
  }
}

/** One Chromium for the stories of a file: started before them, closed after. */
export function useBrowser(): () => Browser {
  let browser: Browser | undefined
  beforeAll(async () => {
    browser = await launch()
  })
  afterAll(async () => {
    await browser?.close()
  })
  return () => {
    if (!browser) throw new Error('the browser is not started yet')
    return browser
  }
}

/** Sends a task through the API (as another client would) and waits for its run to end. */
export async function runTask(token: string, session: string, message: string): Promise<void> {
  const res = await fetch(`${baseUrl()}/api/v1/sessions/${session}/chat`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json', Accept: 'text/event-stream' },
    body: JSON.stringify({ message, client_message_id: crypto.randomUUID() }),
  })
  expect(res.status).toBe(200)
  await res.body?.cancel()
  await waitIdle(token, session)
}
