// @vitest-environment node
// Fails when src/api/schema.d.ts is out of date with openapi.json: run `npm run gen:api`.
import { readFileSync } from 'node:fs'
import { resolve } from 'node:path'
import { describe, expect, it } from 'vitest'
import openapiTS, { astToString } from 'openapi-typescript'

const root = resolve(__dirname, '..') + '/'

describe('generated API types', () => {
  it('src/api/schema.d.ts matches openapi.json', async () => {
    const spec = JSON.parse(readFileSync(`${root}openapi.json`, 'utf8')) as Record<string, unknown>
    const ast = await openapiTS(spec as never)
    const fresh = astToString(ast)
    const committed = readFileSync(`${root}src/api/schema.d.ts`, 'utf8')
    const body = (s: string) => s.replace(/^\/\*\*[\s\S]*?\*\/\s*/, '').trim()
    expect(body(committed), 'schema.d.ts is stale: run `npm run gen:api`').toBe(body(fresh))
  })
})
