import { afterEach, describe, expect, it, vi } from 'vitest'
import { setFetch } from '@/api/client'
import AttachmentCard from '@/components/AttachmentCard.vue'
import MessageBubble from '@/components/MessageBubble.vue'
import type { FileInfo } from '@/api/types'
import { applyEvent, createTimeline } from '@/lib/timeline'
import { mountWith } from './helpers'

const file = (over: Partial<FileInfo> = {}): FileInfo => ({
  file_id: 'f1',
  filename: 'report.pdf',
  content_type: 'application/pdf',
  size: 2048,
  upload_date: '2026-01-01T00:00:00Z',
  metadata: {},
  file_url: '/api/v1/files/f1?expires=4102444800&signature=abc',
  ...over,
})

const HOSTILE = [
  '<img src=x onerror="window.__pwned=1">.png',
  '"><script>window.__pwned=1</script>',
  '<a href="javascript:alert(1)">click</a>',
  '{{ constructor.constructor("window.__pwned=1")() }}',
]

afterEach(() => {
  delete (window as { __pwned?: unknown }).__pwned
})

describe('attachment card', () => {
  it('shows name, size and type, with a download link', () => {
    const w = mountWith(AttachmentCard, { props: { file: file() } })
    expect(w.get('[data-test=filename]').text()).toBe('report.pdf')
    expect(w.text()).toContain('2.0 KB')
    expect(w.text()).toContain('application/pdf')
    const a = w.get('a')
    expect(a.attributes('href')).toBe('/api/v1/files/f1?expires=4102444800&signature=abc')
    expect(a.attributes('rel')).toBe('noopener noreferrer')
    expect(a.attributes('target')).toBe('_blank')
    expect(a.attributes('download')).toBe('report.pdf')
  })

  it.each(HOSTILE)('renders a hostile filename as text: %s', (name) => {
    const w = mountWith(AttachmentCard, { props: { file: file({ filename: name, content_type: 'text/plain' }) } })
    expect(w.get('[data-test=filename]').text()).toBe(name)
    expect(w.find('script').exists()).toBe(false)
    expect(w.findAll('img')).toHaveLength(0)
    expect(w.findAll('a')).toHaveLength(1) // only the download link
    expect(w.get('a').attributes('download')).toBe(name)
    expect((window as { __pwned?: unknown }).__pwned).toBeUndefined()
  })

  it.each([
    'javascript:alert(1)',
    'data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==',
    '//evil.example/steal',
    'vbscript:msgbox(1)',
    null,
  ])('accepts no other file_url: %s', (url) => {
    const w = mountWith(AttachmentCard, { props: { file: file({ file_url: url, content_type: 'image/png' }) } })
    expect(w.find('a').exists()).toBe(false)
    expect(w.find('img').exists()).toBe(false)
    expect(w.text()).toContain('No link')
  })

  it('accepts an absolute https URL and shows raster images as thumbnails (not SVG)', () => {
    const url = 'https://files.example/api/v1/files/f1?expires=4102444800&signature=abc'
    const png = mountWith(AttachmentCard, { props: { file: file({ file_url: url, content_type: 'image/png', filename: 'shot.png' }) } })
    expect(png.get('img').attributes('src')).toBe(url)
    expect(png.get('a').attributes('href')).toBe(url)
    const svg = mountWith(AttachmentCard, { props: { file: file({ file_url: url, content_type: 'image/svg+xml' }) } })
    expect(svg.find('img').exists()).toBe(false)
  })

  it('a stale signed URL is renewed (POST /files/{id}/signed-url) before the download', async () => {
    const calls: { url: string; body: unknown }[] = []
    setFetch((async (url: string, init: RequestInit) => {
      calls.push({ url, body: JSON.parse(String(init.body)) })
      return new Response(JSON.stringify({ code: 0, msg: 'success', data: { signed_url: '/api/v1/files/f1?expires=4102444800&signature=new', expires_in: 900 } }), { status: 200 })
    }) as unknown as typeof fetch)
    const click = vi.spyOn(HTMLAnchorElement.prototype, 'click').mockImplementation(() => {})
    const w = mountWith(AttachmentCard, { props: { file: file({ file_url: '/api/v1/files/f1?expires=1000&signature=old' }) } })
    await w.get('a').trigger('click')
    await new Promise((r) => setTimeout(r, 0))
    await w.vm.$nextTick()
    expect(calls).toEqual([{ url: '/api/v1/files/f1/signed-url', body: { expire_minutes: 15 } }])
    expect(w.get('a').attributes('href')).toBe('/api/v1/files/f1?expires=4102444800&signature=new')
    expect(click).toHaveBeenCalledTimes(1)
    click.mockRestore()
  })

  it('a message event’s attachments become cards under the message', () => {
    const t = createTimeline()
    applyEvent(t, {
      event: 'message',
      data: {
        event_id: 'e1',
        timestamp: 1,
        role: 'assistant',
        content: 'Here is the report.',
        attachments: [file(), { file_id: 'f2', filename: HOSTILE[0], content_type: 'image/png', size: 10, file_url: 'javascript:alert(1)' }, { nope: 1 }],
      },
    })
    const item = t.items[0]!
    if (item.kind !== 'message') throw new Error('expected a message')
    const w = mountWith(MessageBubble, { props: { item } })
    const cards = w.findAll('[data-test=attachment-card]')
    expect(cards).toHaveLength(2)
    expect(cards[1]!.get('[data-test=filename]').text()).toBe(HOSTILE[0])
    expect(cards[1]!.find('a').exists()).toBe(false)
    expect(w.find('script').exists()).toBe(false)
  })
})
