import { describe, expect, it } from 'vitest'
import { fileKind, formatSize, isThumbnailable, safeFileUrl, signedUrlExpired, toFileInfos } from '@/lib/files'

const ORIGIN = 'http://app.example'

describe('file helpers', () => {
  it.each([
    ['https://files.example/api/v1/files/f1?expires=1&signature=x', 'https://files.example/api/v1/files/f1?expires=1&signature=x'],
    ['http://localhost:8000/api/v1/files/f1?expires=1&signature=x', 'http://localhost:8000/api/v1/files/f1?expires=1&signature=x'],
    ['/api/v1/files/f1?expires=1&signature=x', '/api/v1/files/f1?expires=1&signature=x'],
  ])('accepts http(s) and same-origin paths: %s', (url, expected) => {
    expect(safeFileUrl(url, ORIGIN)).toBe(expected)
  })

  it.each([
    'javascript:alert(1)',
    'JavaScript:alert(1)',
    ' javascript:alert(1)',
    'data:text/html,<script>alert(1)</script>',
    'blob:http://app.example/123',
    'vbscript:x',
    '//evil.example/x',
    '/\\evil.example/x',
    'api/v1/files/f1',
    'ftp://x/y',
    '',
    '\u0000javascript:alert(1)',
    'java\nscript:alert(1)',
  ])('refuses anything else: %j', (url) => {
    expect(safeFileUrl(url, ORIGIN)).toBeUndefined()
  })

  it('refuses non-strings', () => {
    expect(safeFileUrl(null, ORIGIN)).toBeUndefined()
    expect(safeFileUrl({ toString: () => 'https://x' }, ORIGIN)).toBeUndefined()
  })

  it('formats sizes', () => {
    expect(formatSize(0)).toBe('0 B')
    expect(formatSize(1536)).toBe('1.5 KB')
    expect(formatSize(10 * 1024 * 1024)).toBe('10 MB')
    expect(formatSize(-1)).toBe('?')
  })

  it('knows kinds and which images get a thumbnail (never SVG)', () => {
    expect(fileKind('image/png')).toBe('image')
    expect(fileKind('application/pdf')).toBe('pdf')
    expect(fileKind('text/plain', 'main.py')).toBe('code')
    expect(fileKind('application/octet-stream', 'data.csv')).toBe('sheet')
    expect(isThumbnailable('image/png')).toBe(true)
    expect(isThumbnailable('image/svg+xml')).toBe(false)
  })

  it('reads the expiry of a signed URL', () => {
    const now = 1_700_000_000_000
    expect(signedUrlExpired(`/api/v1/files/a?expires=${now / 1000 - 1}&signature=s`, now)).toBe(true)
    expect(signedUrlExpired(`/api/v1/files/a?expires=${now / 1000 + 600}&signature=s`, now)).toBe(false)
    expect(signedUrlExpired('/api/v1/files/a', now)).toBe(false)
  })

  it('coerces untrusted attachments from events', () => {
    const list = toFileInfos([
      { file_id: 'f1', filename: 'a.txt', content_type: 'text/plain', size: 3, upload_date: '', metadata: {}, file_url: '/x' },
      { filename: 'no id' },
      'junk',
      null,
      { file_id: 'f2', filename: 42, size: '7', file_url: 5 },
    ])
    expect(list.map((f) => f.file_id)).toEqual(['f1', 'f2'])
    expect(list[1]).toMatchObject({ filename: 'f2', size: 7, content_type: 'application/octet-stream', file_url: null })
    expect(toFileInfos('nope')).toEqual([])
  })
})
