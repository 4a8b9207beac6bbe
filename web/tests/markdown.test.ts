import { describe, expect, it } from 'vitest'
import { plainPreview, renderMarkdown, sanitizeHtml } from '@/lib/markdown'

function dom(html: string): HTMLElement {
  const d = document.createElement('div')
  d.innerHTML = html
  return d
}

describe('markdown sanitiser', () => {
  it('renders ordinary markdown', () => {
    const h = renderMarkdown('**bold** and `code`\n\n- a\n- b')
    expect(h).toContain('<strong>bold</strong>')
    expect(h).toContain('<code>code</code>')
    expect(h).toContain('<li>a</li>')
  })

  it('escapes raw <script> in markdown and strips it from HTML', () => {
    const h = renderMarkdown('hi <script>alert(1)</script>')
    expect(dom(h).querySelector('script')).toBeNull()
    expect(sanitizeHtml('<p>x</p><script>alert(1)</script>')).toBe('<p>x</p>')
  })

  it('neutralises javascript: links', () => {
    for (const src of ['[x](javascript:alert(1))', '[x](JaVaScRiPt:alert(1))', '[x]( javascript:alert(1))']) {
      const d = dom(renderMarkdown(src))
      for (const a of d.querySelectorAll('a')) expect(a.getAttribute('href') ?? '').not.toMatch(/javascript/i)
      expect(d.innerHTML).not.toMatch(/href="javascript/i)
    }
    const d = dom(sanitizeHtml('<a href="javascript:alert(1)">x</a>'))
    expect(d.querySelector('a')?.hasAttribute('href')).toBe(false)
  })

  it('drops event handlers such as onerror', () => {
    const h = sanitizeHtml('<img src=x onerror="alert(1)"><p onclick="alert(1)">t</p>')
    expect(h).not.toMatch(/onerror|onclick|<img/i)
    expect(renderMarkdown('<img src=x onerror=alert(1)>')).not.toMatch(/<img/i)
  })

  it('neutralises data: URLs (links and images)', () => {
    const d = dom(renderMarkdown('[x](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==) ![i](data:image/png;base64,AAAA)'))
    // rejected URLs stay inert text: no element carries a data: URL
    for (const el of d.querySelectorAll('*')) {
      for (const attr of el.getAttributeNames()) expect(el.getAttribute(attr) ?? '').not.toMatch(/^\s*data:/i)
    }
    expect(d.querySelector('a')).toBeNull()
    expect(d.querySelector('img')).toBeNull()
    expect(sanitizeHtml('<a href="data:text/html,x">x</a>')).not.toMatch(/data:/i)
  })

  it('keeps http(s) and mailto links, opened with rel="noopener noreferrer"', () => {
    const d = dom(renderMarkdown('[a](https://example.com) [b](http://example.org) [c](mailto:x@example.com)'))
    const links = [...d.querySelectorAll('a')]
    expect(links.map((a) => a.getAttribute('href'))).toEqual(['https://example.com', 'http://example.org', 'mailto:x@example.com'])
    for (const a of links) {
      expect(a.getAttribute('rel')).toBe('noopener noreferrer')
      expect(a.getAttribute('target')).toBe('_blank')
    }
  })

  it('removes tags outside the allow-list (iframe, style, form, svg)', () => {
    const h = sanitizeHtml('<iframe src="https://x"></iframe><style>*{}</style><form><input></form><svg><script>1</script></svg><p style="color:red">ok</p>')
    expect(h).toBe('<p>ok</p>')
  })
})

describe('plainPreview', () => {
  it('turns markdown into one line of text', () => {
    expect(plainPreview('Here is your **sales report**:\n\n- north: 120\n- south: 95\n\nSee [the table](https://x.y) in `report.md`.')).toBe(
      'Here is your sales report: north: 120 south: 95 See the table in report.md.',
    )
    expect(plainPreview('# Title\n> quoted _word_ and snake_case_name')).toBe('Title quoted word and snake_case_name')
    expect(plainPreview(null)).toBe('')
    expect(plainPreview('x'.repeat(300)).length).toBe(200)
  })
})
