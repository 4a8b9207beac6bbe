// Compile-time checks of the typed client (run by `npm run type-check`, not by vitest).
import { call } from '../src/api/client'
async function f() {
  const a = await call('get', '/api/v1/auth/me')
  const n: string = a.email
  const b = await call('post', '/api/v1/auth/login', { body: { email: 'x', password: 'y' }, auth: false })
  const t: string = b.access_token
  const c = await call('put', '/api/v1/sessions')
  const id: string = c.session_id
  await call('delete', '/api/v1/sessions/{id}', { path: { id } })
  const l = await call('get', '/api/v1/sessions', { query: { limit: 5 } })
  l.sessions.forEach((s) => s.status)
  // @ts-expect-error missing path
  await call('post', '/api/v1/sessions/{id}/stop')
  return [n, t]
}
export { f }
