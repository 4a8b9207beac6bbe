import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { clearTokens, setFetch, setTokens } from '@/api/client'
import { toMcpServers, type McpServer } from '@/api/mcp'
import ConnectorsSettings from '@/components/ConnectorsSettings.vue'
import { buildPutBody, commandLine, emptyForm, formFromServer, parseArgs, secretRow, toggleBody, validateForm } from '@/lib/mcp'
import { useToasts } from '@/stores/toast'
import { flush, mountWith } from './helpers'

const json = (data: unknown, status = 200, code = 0, msg = 'success') =>
  new Response(JSON.stringify({ code, msg, data }), { status, headers: { 'Content-Type': 'application/json' } })

interface Req {
  method: string
  url: string
  body: unknown
  auth: string | null
}
let requests: Req[] = []
let answer: (r: Req) => Response | Promise<Response>

const github: McpServer = {
  name: 'github',
  transport: 'stdio',
  command: 'npx',
  args: ['-y', '@modelcontextprotocol/server-github', 'two words'],
  env_keys: ['GITHUB_TOKEN', 'OLD_KEY'],
  enabled: true,
  scope: 'user',
  status: 'ready: 12 tools',
}
const notes: McpServer = {
  name: 'notes',
  transport: 'streamable-http',
  url: 'https://notes.example.com/mcp',
  header_keys: ['Authorization'],
  enabled: false,
  scope: 'user',
  status: 'failed to start: connection refused',
}
const ops: McpServer = {
  name: 'ops-search',
  transport: 'sse',
  url: 'https://mcp.corp.example/sse',
  enabled: true,
  scope: 'operator',
  description: 'Company search',
  status: 'not started yet',
}
let listed: McpServer[] = []

beforeEach(() => {
  requests = []
  listed = [github, notes, ops]
  answer = (r) => (r.method === 'GET' && r.url === '/api/v1/mcp/servers' ? json(listed) : json(null, 404, 404, 'Not found'))
  setTokens('tok', 'ref')
  setFetch((async (url: string, init: RequestInit = {}) => {
    const headers = (init.headers ?? {}) as Record<string, string>
    const r: Req = { method: init.method ?? 'GET', url, body: init.body ? JSON.parse(String(init.body)) : null, auth: headers.Authorization ?? null }
    requests.push(r)
    return answer(r)
  }) as unknown as typeof fetch)
})
afterEach(() => {
  clearTokens()
  document.body.innerHTML = ''
})

async function mountIt() {
  const w = mountWith(ConnectorsSettings, { attachTo: document.body })
  await flush()
  await flush()
  return w
}
const rows = (w: Awaited<ReturnType<typeof mountIt>>) => w.findAll('[data-test=connector]')
const row = (w: Awaited<ReturnType<typeof mountIt>>, name: string) => rows(w).find((r) => r.get('[data-test=connector-name]').text() === name)!
const writes = () => requests.filter((r) => r.method !== 'GET')

function deferred<T>() {
  let resolve!: (v: T) => void
  const promise = new Promise<T>((r) => (resolve = r))
  return { promise, resolve }
}

describe('connectors: the list', () => {
  it('shows the user’s servers with controls and the operator’s read-only', async () => {
    const w = await mountIt()
    expect(requests).toEqual([{ method: 'GET', url: '/api/v1/mcp/servers', body: null, auth: 'Bearer tok' }])
    expect(rows(w).map((r) => r.get('[data-test=connector-name]').text())).toEqual(['github', 'notes', 'ops-search'])

    const gh = row(w, 'github')
    expect(gh.attributes('data-scope')).toBe('user')
    expect(gh.get('[data-test=connector-transport]').text()).toBe('stdio')
    expect(gh.get('[data-test=connector-target]').text()).toBe("npx -y @modelcontextprotocol/server-github 'two words'")
    expect(gh.get('[data-test=connector-env-keys]').text()).toBe('Environment variables: GITHUB_TOKEN, OLD_KEY')
    expect(gh.get('[data-test=connector-status]').text()).toContain('ready: 12 tools')
    expect(gh.get('[data-test=connector-status]').classes().join(' ')).toContain('emerald')
    const toggle = gh.get('[data-test=connector-enabled]')
    expect((toggle.element as HTMLInputElement).checked).toBe(true)
    expect(toggle.attributes('role')).toBe('switch')
    // the switch's accessible name says which server it is
    expect(toggle.element.closest('label')!.textContent).toContain('Enabled: github')
    expect(gh.find('[data-test=connector-edit]').exists()).toBe(true)
    expect(gh.find('[data-test=connector-delete]').exists()).toBe(true)
    expect(gh.find('[data-test=connector-operator]').exists()).toBe(false)

    const nt = row(w, 'notes')
    expect(nt.get('[data-test=connector-transport]').text()).toBe('streamable-http')
    expect(nt.get('[data-test=connector-target]').text()).toBe('https://notes.example.com/mcp')
    expect(nt.get('[data-test=connector-header-keys]').text()).toBe('Headers: Authorization')
    expect((nt.get('[data-test=connector-enabled]').element as HTMLInputElement).checked).toBe(false)
    expect(nt.get('[data-test=connector-status]').classes().join(' ')).toContain('red')

    const op = row(w, 'ops-search')
    expect(op.attributes('data-scope')).toBe('operator')
    expect(op.get('[data-test=connector-operator]').text()).toContain('Operator')
    expect(op.get('[data-test=connector-description]').text()).toBe('Company search')
    expect(op.get('[data-test=connector-state]').text()).toBe('Enabled')
    expect(op.find('[data-test=connector-enabled]').exists()).toBe(false)
    expect(op.find('[data-test=connector-edit]').exists()).toBe(false)
    expect(op.find('[data-test=connector-delete]').exists()).toBe(false)
    // testing is offered for every server
    expect(op.find('[data-test=connector-test]').exists()).toBe(true)
    // secret values are never on the page (the answer has none, and none is invented)
    expect(w.html()).not.toMatch(/type="password"/)
    expect(w.find('[data-test=connector-add]').exists()).toBe(true)
    w.unmount()
  })

  it('an empty list, then a failed load with a retry', async () => {
    listed = []
    const w = await mountIt()
    expect(w.get('[data-test=connectors-empty]').text()).toBe('No connectors yet.')
    w.unmount()

    answer = () => json(null, 500, 500, 'The database is unavailable.')
    const w2 = await mountIt()
    expect(w2.get('[data-test=connectors-error]').text()).toContain('The connectors could not be loaded: The database is unavailable.')
    expect(w2.find('[data-test=connector-add]').exists()).toBe(false)
    answer = () => json([ops])
    await w2.get('[data-test=connectors-error] button').trigger('click')
    await flush()
    expect(rows(w2)).toHaveLength(1)
    expect(useToasts().toasts).toEqual([])
    w2.unmount()
  })

  it('drops entries it cannot use and treats unknown scopes as read-only', () => {
    expect(
      toMcpServers([
        { name: 'a', transport: 'stdio', command: 'x', enabled: true, scope: 'user' },
        { name: '', transport: 'stdio' },
        { name: 'b', transport: 'carrier-pigeon' },
        { name: 'c', transport: 'sse', url: 'https://c.example/', scope: 'someone-else', enabled: false, env_keys: ['K', 3] },
        null,
      ]),
    ).toEqual([
      { name: 'a', transport: 'stdio', command: 'x', enabled: true, scope: 'user', url: undefined, args: undefined, env_keys: undefined, header_keys: undefined, description: undefined, status: undefined },
      { name: 'c', transport: 'sse', url: 'https://c.example/', enabled: false, scope: 'operator', command: undefined, args: undefined, env_keys: ['K'], header_keys: undefined, description: undefined, status: undefined },
    ])
    expect(toMcpServers({ not: 'a list' })).toEqual([])
  })
})

describe('connectors: the form', () => {
  it('checks the fields like the server before sending anything', async () => {
    const w = await mountIt()
    await w.get('[data-test=connector-add]').trigger('click')
    const form = w.get('[data-test=connector-form]')
    expect(document.activeElement).toBe(form.get('[data-test=connector-form-name]').element)

    await form.trigger('submit')
    await flush()
    expect(writes()).toEqual([])
    expect(form.get('[data-test=error-name]').text()).toBe('Enter a name.')
    expect(form.get('[data-test=error-command]').text()).toBe('Enter the command to run.')
    const name = form.get('[data-test=connector-form-name]')
    expect(name.attributes('aria-invalid')).toBe('true')
    expect(name.attributes('aria-describedby')).toBe(form.get('[data-test=error-name]').attributes('id'))
    expect(document.activeElement).toBe(name.element)

    await name.setValue('my server!')
    expect(form.get('[data-test=error-name]').text()).toBe('The name can only have letters, digits, “-” and “_”, at most 64 of them.')
    await name.setValue('x'.repeat(65))
    expect(form.find('[data-test=error-name]').exists()).toBe(true)
    await name.setValue('github')
    expect(form.get('[data-test=error-name]').text()).toBe('You already have a connector with this name.')
    await name.setValue('fs_tools-2')
    expect(form.find('[data-test=error-name]').exists()).toBe(false)

    // HTTP transports need an http(s) URL
    await form.get('[data-test=connector-form-transport]').setValue('sse')
    expect(form.find('[data-test=connector-form-command]').exists()).toBe(false)
    expect(form.get('[data-test=error-url]').text()).toBe('Enter the URL.')
    for (const bad of ['ftp://files.example.com/', 'javascript:alert(1)', 'example.com/mcp', 'https://']) {
      await form.get('[data-test=connector-form-url]').setValue(bad)
      expect(form.get('[data-test=error-url]').text(), bad).toBe('Enter a full address starting with http:// or https://.')
    }
    await form.get('[data-test=connector-form-url]').setValue('https://mcp.example.com/sse')
    expect(form.find('[data-test=error-url]').exists()).toBe(false)

    // header rows: a bad name, a duplicate (case-insensitive), a new key without a value
    await form.get('[data-test=connector-form-add-headers]').trigger('click')
    await form.get('[data-test=connector-form-add-headers]').trigger('click')
    await form.get('[data-test=connector-form-add-headers]').trigger('click')
    const keys = form.findAll('[data-test=secret-key]')
    const values = form.findAll('[data-test=secret-value]')
    expect(values.every((v) => v.attributes('type') === 'password')).toBe(true)
    await keys[0]!.setValue('Bad Header')
    await values[0]!.setValue('x')
    await keys[1]!.setValue('X-Token')
    await values[1]!.setValue('a')
    await keys[2]!.setValue('x-token')
    const errs = form.findAll('[data-test=error-secret]').map((e) => e.text())
    expect(errs).toEqual(['“Bad Header” is not a valid name.', '“x-token” is there twice.', 'Enter a value for x-token.'])
    await form.trigger('submit')
    await flush()
    expect(writes()).toEqual([])
    w.unmount()
  })

  it('adds a local (stdio) server: the body, the list and the focus', async () => {
    const stored: McpServer = {
      name: 'fs',
      transport: 'stdio',
      command: 'mcp-server-filesystem',
      args: ['/home/ubuntu', '--read-only'],
      env_keys: ['LOG_LEVEL'],
      enabled: true,
      scope: 'user',
      status: 'not started yet',
    }
    answer = (r) => (r.method === 'PUT' ? json(stored) : json(listed))
    const w = await mountIt()
    await w.get('[data-test=connector-add]').trigger('click')
    const form = w.get('[data-test=connector-form]')
    await form.get('[data-test=connector-form-name]').setValue(' fs ')
    await form.get('[data-test=connector-form-command]').setValue('mcp-server-filesystem')
    await form.get('[data-test=connector-form-args]').setValue('/home/ubuntu\n\n  --read-only  \n')
    await form.get('[data-test=connector-form-add-env]').trigger('click')
    // a blank row is ignored
    await form.get('[data-test=connector-form-add-env]').trigger('click')
    expect(document.activeElement).toBe(form.findAll('[data-test=secret-key]')[1]!.element)
    await form.findAll('[data-test=secret-key]')[0]!.setValue('LOG_LEVEL')
    await form.findAll('[data-test=secret-value]')[0]!.setValue('debug')
    await form.trigger('submit')
    await flush()
    expect(writes()).toEqual([
      {
        method: 'PUT',
        url: '/api/v1/mcp/servers',
        auth: 'Bearer tok',
        body: { name: 'fs', transport: 'stdio', enabled: true, command: 'mcp-server-filesystem', args: ['/home/ubuntu', '--read-only'], env: { LOG_LEVEL: 'debug' } },
      },
    ])
    // the new server goes after the user's own, before the operator's
    expect(rows(w).map((r) => r.get('[data-test=connector-name]').text())).toEqual(['github', 'notes', 'fs', 'ops-search'])
    expect(w.find('[data-test=connector-form]').exists()).toBe(false)
    expect(document.activeElement).toBe(w.get('[data-test=connector-add]').element)
    expect(useToasts().toasts.map((t) => t.text)).toEqual(['The connector fs was saved.'])
    w.unmount()
  })

  it('edits a server: stored secrets are "unchanged" (null), removed ones left out, new ones sent', async () => {
    answer = (r) => (r.method === 'PUT' ? json({ ...github, env_keys: ['GITHUB_TOKEN', 'NEW_KEY'], args: ['-y', 'pkg'] }) : json(listed))
    const w = await mountIt()
    await row(w, 'github').get('[data-test=connector-edit]').trigger('click')
    const form = w.get('[data-test=connector-form]')
    expect(form.get('h3').text()).toBe('Edit github')
    const name = form.get('[data-test=connector-form-name]')
    expect((name.element as HTMLInputElement).value).toBe('github')
    expect(name.attributes('readonly')).toBeDefined()
    expect((form.get('[data-test=connector-form-command]').element as HTMLInputElement).value).toBe('npx')
    expect((form.get('[data-test=connector-form-args]').element as HTMLTextAreaElement).value).toBe('-y\n@modelcontextprotocol/server-github\ntwo words')

    // the stored keys, read-only, with empty password inputs saying "unchanged"
    const keys = form.findAll('[data-test=secret-key]')
    expect(keys.map((k) => (k.element as HTMLInputElement).value)).toEqual(['GITHUB_TOKEN', 'OLD_KEY'])
    expect(keys.every((k) => k.attributes('readonly') !== undefined)).toBe(true)
    const values = form.findAll('[data-test=secret-value]')
    expect(values.map((v) => (v.element as HTMLInputElement).value)).toEqual(['', ''])
    expect(values.map((v) => v.attributes('placeholder'))).toEqual(['unchanged', 'unchanged'])
    expect(values.map((v) => v.attributes('type'))).toEqual(['password', 'password'])
    expect(values[0]!.attributes('autocomplete')).toBe('new-password')
    expect(values[0]!.attributes('aria-label')).toBe('Value of GITHUB_TOKEN')

    // remove OLD_KEY, add NEW_KEY, change the args, keep GITHUB_TOKEN
    const removeOld = form.findAll('[data-test=secret-remove]')[1]!
    expect(removeOld.attributes('aria-label')).toBe('Remove OLD_KEY')
    await removeOld.trigger('click')
    await form.get('[data-test=connector-form-add-env]').trigger('click')
    await form.findAll('[data-test=secret-key]')[1]!.setValue('NEW_KEY')
    await form.findAll('[data-test=secret-value]')[1]!.setValue('s3cret')
    await form.get('[data-test=connector-form-args]').setValue('-y\npkg')
    await form.trigger('submit')
    await flush()
    expect(writes()).toEqual([
      {
        method: 'PUT',
        url: '/api/v1/mcp/servers',
        auth: 'Bearer tok',
        body: { name: 'github', transport: 'stdio', enabled: true, command: 'npx', args: ['-y', 'pkg'], env: { GITHUB_TOKEN: null, NEW_KEY: 's3cret' } },
      },
    ])
    expect(row(w, 'github').get('[data-test=connector-env-keys]').text()).toBe('Environment variables: GITHUB_TOKEN, NEW_KEY')
    // focus goes back to the server's edit button, and no typed secret remains on the page
    expect(document.activeElement).toBe(row(w, 'github').get('[data-test=connector-edit]').element)
    expect(w.html()).not.toContain('s3cret')
    w.unmount()
  })

  it('a new value for a stored header replaces it; switching to HTTP sends only url and headers', async () => {
    answer = (r) => (r.method === 'PUT' ? json({ ...notes, enabled: true }) : json(listed))
    const w = await mountIt()
    await row(w, 'notes').get('[data-test=connector-edit]').trigger('click')
    const form = w.get('[data-test=connector-form]')
    expect((form.get('[data-test=connector-form-transport]').element as HTMLSelectElement).value).toBe('streamable-http')
    expect((form.get('[data-test=connector-form-url]').element as HTMLInputElement).value).toBe('https://notes.example.com/mcp')
    await form.get('[data-test=secret-value]').setValue('Bearer new')
    await form.get('[data-test=connector-form-enabled]').setValue(true)
    await form.trigger('submit')
    await flush()
    expect(writes().map((r) => r.body)).toEqual([
      { name: 'notes', transport: 'streamable-http', enabled: true, url: 'https://notes.example.com/mcp', headers: { Authorization: 'Bearer new' } },
    ])
    expect((row(w, 'notes').get('[data-test=connector-enabled]').element as HTMLInputElement).checked).toBe(true)
    w.unmount()
  })

  it('shows the server’s refusal verbatim and keeps the form', async () => {
    answer = (r) =>
      r.method === 'PUT'
        ? json([{ field: 'command', message: 'not allowed' }], 422, 422, 'The command “curl” is not in the allow-list of this server.')
        : json(listed)
    const w = await mountIt()
    await w.get('[data-test=connector-add]').trigger('click')
    const form = w.get('[data-test=connector-form]')
    await form.get('[data-test=connector-form-name]').setValue('web')
    await form.get('[data-test=connector-form-command]').setValue('curl')
    await form.trigger('submit')
    await flush()
    const err = w.get('[data-test=connector-save-error]')
    expect(err.attributes('role')).toBe('alert')
    expect(err.text()).toContain('The command “curl” is not in the allow-list of this server.')
    expect(err.text()).toContain('command: not allowed')
    expect(document.activeElement).toBe(err.element)
    expect(w.find('[data-test=connector-form]').exists()).toBe(true)
    expect(useToasts().toasts).toEqual([])

    // Escape cancels, and focus returns to "Add connector"
    await w.get('[data-test=connector-form-command]').trigger('keydown', { key: 'Escape' })
    await flush()
    expect(w.find('[data-test=connector-form]').exists()).toBe(false)
    expect(document.activeElement).toBe(w.get('[data-test=connector-add]').element)
    w.unmount()
  })

  it('403 (user servers turned off): the message, and no more add or edit', async () => {
    answer = (r) => (r.method === 'PUT' ? json(null, 403, 403, 'The operator does not allow your own connectors on this server.') : json(listed))
    const w = await mountIt()
    await w.get('[data-test=connector-add]').trigger('click')
    const form = w.get('[data-test=connector-form]')
    await form.get('[data-test=connector-form-name]').setValue('web')
    await form.get('[data-test=connector-form-command]').setValue('uvx')
    await form.trigger('submit')
    await flush()
    const off = w.get('[data-test=connectors-off]')
    expect(off.text()).toBe('The operator does not allow your own connectors on this server.')
    expect(off.attributes('role')).toBe('alert')
    expect(document.activeElement).toBe(off.element)
    expect(w.find('[data-test=connector-form]').exists()).toBe(false)
    expect(w.find('[data-test=connector-add]').exists()).toBe(false)
    expect(w.find('[data-test=connector-edit]').exists()).toBe(false)
    expect((row(w, 'github').get('[data-test=connector-enabled]').element as HTMLInputElement).disabled).toBe(true)
    // deleting one's own and testing stay possible
    expect(row(w, 'github').find('[data-test=connector-delete]').exists()).toBe(true)
    expect(row(w, 'github').find('[data-test=connector-test]').exists()).toBe(true)
    w.unmount()
  })
})

describe('connectors: enable, test, delete', () => {
  it('the switch stores only `enabled`, keeping every secret (null)', async () => {
    answer = (r) => (r.method === 'PUT' ? json({ ...github, enabled: false }) : json(listed))
    const w = await mountIt()
    const sw = row(w, 'github').get('[data-test=connector-enabled]')
    await sw.setValue(false)
    await flush()
    expect(writes()).toEqual([
      {
        method: 'PUT',
        url: '/api/v1/mcp/servers',
        auth: 'Bearer tok',
        body: {
          name: 'github',
          transport: 'stdio',
          enabled: false,
          command: 'npx',
          args: ['-y', '@modelcontextprotocol/server-github', 'two words'],
          env: { GITHUB_TOKEN: null, OLD_KEY: null },
        },
      },
    ])
    expect((row(w, 'github').get('[data-test=connector-enabled]').element as HTMLInputElement).checked).toBe(false)
    w.unmount()
  })

  it('a refused switch goes back and says why', async () => {
    answer = (r) => (r.method === 'PUT' ? json(null, 422, 422, 'The URL points to a private address.') : json(listed))
    const w = await mountIt()
    const sw = row(w, 'notes').get('[data-test=connector-enabled]')
    await sw.setValue(true)
    await flush()
    expect(writes()[0]!.body).toEqual({ name: 'notes', transport: 'streamable-http', enabled: true, url: 'https://notes.example.com/mcp', headers: { Authorization: null } })
    expect((sw.element as HTMLInputElement).checked).toBe(false)
    expect(useToasts().toasts[0]).toMatchObject({ kind: 'error', text: 'The URL points to a private address.' })
    w.unmount()
  })

  it('Test: a spinner while it runs, then the tools (collapsible), and the status refreshed', async () => {
    const pending = deferred<Response>()
    answer = (r) => (r.method === 'POST' ? pending.promise : json(listed))
    const w = await mountIt()
    const btn = row(w, 'ops-search').get('[data-test=connector-test]')
    expect(btn.text()).toBe('Test: ops-search')
    await btn.trigger('click')
    await flush()
    expect(writes()).toEqual([{ method: 'POST', url: '/api/v1/mcp/servers/ops-search/test', body: null, auth: 'Bearer tok' }])
    const op = row(w, 'ops-search')
    expect(op.get('[data-test=connector-testing]').text()).toBe('Testing… starting a connector can take up to 30 s.')
    expect(op.get('[data-test=connector-test]').attributes('disabled')).toBeDefined()
    expect(op.get('[data-test=connector-test]').attributes('aria-busy')).toBe('true')

    listed = [github, notes, { ...ops, status: 'ready: 2 tools' }]
    pending.resolve(json({ tools: [{ name: 'search', description: 'Search the intranet' }, { name: 'fetch_doc', description: '' }] }))
    await flush()
    await flush()
    const after = row(w, 'ops-search')
    expect(after.find('[data-test=connector-testing]').exists()).toBe(false)
    const details = after.get('[data-test=connector-test-tools]')
    expect(details.element.tagName).toBe('DETAILS')
    expect((details.element as HTMLDetailsElement).open).toBe(false)
    expect(details.get('summary').text()).toBe('Tools offered: 2')
    expect(details.findAll('[data-test=connector-tool]').map((x) => x.text())).toEqual(['search — Search the intranet', 'fetch_doc'])
    // the list was read again for the new readiness text
    expect(requests.filter((r) => r.method === 'GET')).toHaveLength(2)
    expect(after.get('[data-test=connector-status]').text()).toContain('ready: 2 tools')
    w.unmount()
  })

  it('Test: the server’s error, or no tools', async () => {
    answer = (r) =>
      r.method === 'POST'
        ? r.url.includes('/github/')
          ? json(null, 502, 502, 'failed to start: npx exited with status 1')
          : json({ tools: [] })
        : json(listed)
    const w = await mountIt()
    await row(w, 'github').get('[data-test=connector-test]').trigger('click')
    await row(w, 'notes').get('[data-test=connector-test]').trigger('click')
    await flush()
    await flush()
    expect(row(w, 'github').get('[data-test=connector-test-error]').text()).toBe('Test failed: failed to start: npx exited with status 1')
    expect(row(w, 'notes').get('[data-test=connector-test-empty]').text()).toBe('The connector answered but offers no tools.')
    expect(useToasts().toasts).toEqual([])
    w.unmount()
  })

  it('delete asks first (focus on the confirmation), cancel returns, confirm removes', async () => {
    answer = (r) => (r.method === 'DELETE' ? json(null) : json(listed))
    const w = await mountIt()
    await row(w, 'github').get('[data-test=connector-delete]').trigger('click')
    await flush()
    expect(writes()).toEqual([])
    const dlg = row(w, 'github').get('[data-test=connector-delete-confirm]')
    expect(dlg.attributes('role')).toBe('alertdialog')
    expect(dlg.text()).toContain('Delete the connector github?')
    expect(document.activeElement).toBe(row(w, 'github').get('[data-test=connector-delete-yes]').element)
    await row(w, 'github').get('[data-test=connector-delete-no]').trigger('click')
    await flush()
    expect(row(w, 'github').find('[data-test=connector-delete-confirm]').exists()).toBe(false)
    expect(document.activeElement).toBe(row(w, 'github').get('[data-test=connector-delete]').element)

    await row(w, 'github').get('[data-test=connector-delete]').trigger('click')
    await flush()
    await row(w, 'github').get('[data-test=connector-delete-yes]').trigger('click')
    await flush()
    expect(writes()).toEqual([{ method: 'DELETE', url: '/api/v1/mcp/servers/github', body: null, auth: 'Bearer tok' }])
    expect(rows(w).map((r) => r.get('[data-test=connector-name]').text())).toEqual(['notes', 'ops-search'])
    expect(useToasts().toasts.map((t) => t.text)).toEqual(['The connector github was deleted.'])
    w.unmount()
  })
})

describe('connectors: the rules as functions', () => {
  it('the body of a form', () => {
    const f = formFromServer(github)
    f.env[0]!.value = ''
    f.env[1]!.value = 'replaced'
    f.env.push(secretRow('EXTRA'))
    f.env[2]!.value = 'v'
    expect(buildPutBody(f)).toEqual({
      name: 'github',
      transport: 'stdio',
      enabled: true,
      command: 'npx',
      args: ['-y', '@modelcontextprotocol/server-github', 'two words'],
      env: { GITHUB_TOKEN: null, OLD_KEY: 'replaced', EXTRA: 'v' },
    })
    // every stored secret removed: an empty map, which removes them all
    f.env = []
    expect(buildPutBody(f).env).toEqual({})
    expect(toggleBody(ops, false)).toEqual({ name: 'ops-search', transport: 'sse', enabled: false, url: 'https://mcp.corp.example/sse', headers: {} })
  })

  it('validation codes', () => {
    const f = emptyForm()
    expect(validateForm(f).map((e) => e.code)).toEqual(['nameMissing', 'commandMissing'])
    f.name = 'a'.repeat(64)
    f.command = 'uvx'
    expect(validateForm(f)).toEqual([])
    f.env.push(secretRow('1BAD'), secretRow(''))
    f.env[0]!.value = 'x'
    f.env[1]!.value = 'orphan value'
    expect(validateForm(f).map((e) => e.code)).toEqual(['keyInvalid', 'keyMissing'])
    // an edited server may keep its own name
    const e = formFromServer(github)
    expect(validateForm(e, ['github'])).toEqual([])
    expect(validateForm({ ...emptyForm(), name: 'github', command: 'x' }, ['github']).map((x) => x.code)).toEqual(['nameTaken'])
  })

  it('arguments and command lines', () => {
    expect(parseArgs(' a \r\n\r\n b c \n')).toEqual(['a', 'b c'])
    expect(commandLine('uvx', ['mcp-server-fetch', "it's", ''])).toBe(`uvx mcp-server-fetch 'it'\\''s' ''`)
    expect(commandLine(undefined, undefined)).toBe('')
  })
})
