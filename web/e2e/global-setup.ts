/**
 * Starts the real server (the `ironhand` binary, which serves the built web app) on SQLite
 * in a temporary data directory, with the fake model (`fake-llm`) playing the scenarios in
 * `e2e/scenarios/`. The tests get the base URL through `inject('baseUrl')`.
 *
 * Binaries come from `$CARGO_TARGET_DIR` (or `target/`) `/debug/`, or from `IRONHAND_BIN` /
 * `FAKE_LLM_BIN`; `make test` builds them first.
 *
 * The operator offers one connector to everyone: npm's MCP `server-everything` (over stdio,
 * inside each session's sandbox) from the repository's `mcp-servers/`, which
 * `scripts/install-mcp-servers.sh` fills. Its tools are in every run's tool list; scenarios
 * that do not call them are unaffected.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { chmodSync, createWriteStream, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { TestProject } from 'vitest/node'

const here = dirname(fileURLToPath(import.meta.url))
const repo = resolve(here, '../..')

declare module 'vitest' {
  export interface ProvidedContext {
    baseUrl: string
    logFile: string
  }
}

function binary(env: string, name: string): string {
  const fromEnv = process.env[env]
  if (fromEnv) return fromEnv
  const target = process.env.CARGO_TARGET_DIR ? resolve(repo, process.env.CARGO_TARGET_DIR) : join(repo, 'target')
  const path = join(target, 'debug', name)
  if (!existsSync(path)) throw new Error(`${path} is missing: run \`cargo build -p ironhand-server -p ironhand-fakes\` (make test does)`)
  return path
}

const EVERYTHING = '@modelcontextprotocol/server-everything/dist/index.js'

/** The repository's installed MCP servers, seen read-only at `/opt/mcp` in every sandbox. */
function mcpPackages(): string {
  const dir = join(repo, 'mcp-servers')
  if (!existsSync(join(dir, 'node_modules', EVERYTHING))) {
    throw new Error(`${dir}/node_modules has no ${EVERYTHING}: run scripts/install-mcp-servers.sh (make test does)`)
  }
  return dir
}

function freePort(): Promise<number> {
  return new Promise((ok, fail) => {
    const s = createServer()
    s.once('error', fail)
    s.listen(0, '127.0.0.1', () => {
      const addr = s.address()
      s.close(() => (typeof addr === 'object' && addr ? ok(addr.port) : fail(new Error('no port'))))
    })
  })
}

async function waitFor(url: string, child: ChildProcess, what: string, timeoutMs = 60_000): Promise<void> {
  const until = Date.now() + timeoutMs
  while (Date.now() < until) {
    if (child.exitCode !== null) throw new Error(`${what} exited with ${child.exitCode}`)
    try {
      const r = await fetch(url)
      if (r.status < 500) return
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 200))
  }
  throw new Error(`${what} did not answer at ${url} within ${timeoutMs} ms`)
}

let children: ChildProcess[] = []
let dataDir = ''

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  dataDir = mkdtempSync(join(tmpdir(), 'ironhand-e2e-'))
  // the sandbox user (uid 60000 when run as root) must be able to reach the workspaces
  chmodSync(dataDir, 0o755)
  const log = join(dataDir, 'server.log')
  const out = createWriteStream(log)
  const llmPort = await freePort()
  const port = await freePort()
  const env = {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    HOME: process.env.HOME ?? dataDir,
    RUST_LOG: 'warn',
  }

  const llm = spawn(binary('FAKE_LLM_BIN', 'fake-llm'), ['--bind', `127.0.0.1:${llmPort}`, '--scenarios', join(here, 'scenarios'), '--default', 'quick'], {
    env,
    stdio: ['ignore', 'ignore', 'pipe'],
  })
  llm.stderr?.pipe(out, { end: false })
  children.push(llm)

  // localhost, not 127.0.0.1: browsers keep `Secure` cookies (cookie mode) on localhost only
  const base = `http://localhost:${port}`
  const config = join(dataDir, 'ironhand.toml')
  writeFileSync(
    config,
    `
[server]
bind = "127.0.0.1:${port}"
admin_bind = ""
public_url = "${base}"
data_dir = "${join(dataDir, 'data')}"

[auth]
free_monthly_runs = 6
argon2_memory_kib = 1024
argon2_iterations = 1

[billing]
enforce_limits = true

[rate_limits]
register = "100/minute"
login = "20/minute"

[llm]
base_url = "http://127.0.0.1:${llmPort}/v1"
model = "fake-model"
request_timeout_secs = 90
stall_timeout_secs = 90
total_timeout_secs = 300
max_retries = 0

[sandbox]
network = false
# the server is killed at the end: plain workspace directories leave no mounts behind
workspace_max_bytes = 0

[mcp]
packages_dir = ${JSON.stringify(mcpPackages())}

# the operator's connector (e2e/connectors.e2e.ts): every run is offered its tools
[[mcp.servers]]
name = "everything"
command = "node"
args = [${JSON.stringify(`/opt/mcp/node_modules/${EVERYTHING}`)}, "stdio"]
description = "MCP test server (server-everything)"
`,
  )
  const server = spawn(binary('IRONHAND_BIN', 'ironhand'), ['--config', config, 'serve'], {
    env: { ...env, LLM_API_KEY: 'fake-key' },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  server.stdout?.pipe(out, { end: false })
  server.stderr?.pipe(out, { end: false })
  children.push(server)

  await waitFor(`http://127.0.0.1:${llmPort}/v1/models`, llm, 'fake-llm')
  await waitFor(`${base}/api/v1/health`, server, `ironhand (log: ${log})`)
  const index = await (await fetch(`${base}/`)).text()
  if (!index.includes('/assets/')) {
    throw new Error('the server answers / without the built web app: run `npm run build` in web/ and rebuild the server')
  }
  project.provide('baseUrl', base)
  project.provide('logFile', log)

  return async () => {
    for (const c of children) c.kill('SIGTERM')
    await Promise.all(children.map((c) => (c.exitCode !== null ? Promise.resolve() : new Promise((r) => c.once('exit', r)))))
    children = []
    // the server's errors (if any) help when a story failed in CI
    const errors = readFileSync(log, 'utf8')
      .split('\n')
      .filter((l) => /\bERROR\b/.test(l))
    if (errors.length) console.warn(`ironhand logged ${errors.length} error(s):\n${errors.slice(-20).join('\n')}`)
    if (!process.env.E2E_KEEP) rmSync(dataDir, { recursive: true, force: true })
  }
}
