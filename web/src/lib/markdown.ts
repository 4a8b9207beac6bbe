/**
 * Markdown → sanitised HTML. Everything that ends up in `v-html` goes through here.
 *
 * markdown-it runs with `html: false` (raw HTML in the source is escaped), then DOMPurify
 * enforces a fixed allow-list of tags/attributes, and a hook rewrites links: only
 * http(s) and mailto survive, and every link opens with rel="noopener noreferrer".
 */
import MarkdownIt from 'markdown-it'
import DOMPurify from 'dompurify'

const md = new MarkdownIt({ html: false, linkify: true, breaks: true })

// markdown-it's own link validation already rejects javascript:/vbscript:/file:/data:
// (except some images); tighten it to the same allow-list DOMPurify enforces below.
const SAFE_URL = /^(https?:|mailto:)/i
md.validateLink = (url: string) => SAFE_URL.test(url.trim())

export const ALLOWED_TAGS = [
  'a', 'b', 'blockquote', 'br', 'code', 'del', 'em', 'h1', 'h2', 'h3', 'h4', 'h5', 'h6', 'hr',
  'i', 'li', 'ol', 'p', 'pre', 's', 'strong', 'table', 'tbody', 'td', 'th', 'thead', 'tr', 'ul',
]
export const ALLOWED_ATTR = ['href', 'title', 'colspan', 'rowspan', 'align']

let purifier: ReturnType<typeof DOMPurify> | null = null

function getPurifier(): ReturnType<typeof DOMPurify> {
  if (purifier) return purifier
  const p = DOMPurify(window)
  p.addHook('afterSanitizeAttributes', (node) => {
    if (node.tagName === 'A') {
      const href = node.getAttribute('href') ?? ''
      if (!SAFE_URL.test(href.trim())) {
        node.removeAttribute('href')
      } else {
        node.setAttribute('target', '_blank')
        node.setAttribute('rel', 'noopener noreferrer')
      }
    }
  })
  purifier = p
  return p
}

/** Sanitises an HTML fragment with the allow-list. */
export function sanitizeHtml(html: string): string {
  return getPurifier().sanitize(html, {
    ALLOWED_TAGS,
    ALLOWED_ATTR: [...ALLOWED_ATTR, 'target', 'rel'],
    ALLOWED_URI_REGEXP: /^(?:https?:|mailto:)/i,
    ALLOW_DATA_ATTR: false,
    ALLOW_ARIA_ATTR: false,
    RETURN_TRUSTED_TYPE: false,
  }) as string
}

/** Renders user/agent markdown to HTML that is safe for `v-html`. */
export function renderMarkdown(src: string): string {
  return sanitizeHtml(md.render(src ?? ''))
}

/** One line of plain text from markdown, for previews (session list, switcher). */
export function plainPreview(md: string | null | undefined, max = 200): string {
  if (!md) return ''
  const text = md
    .replace(/```[^\n]*\n?/g, ' ')
    .replace(/!\[([^\]]*)\]\([^)]*\)/g, '$1')
    .replace(/\[([^\]]*)\]\([^)]*\)/g, '$1')
    .replace(/^\s{0,3}(#{1,6}\s+|>\s?|[-*+]\s+|\d+[.)]\s+)/gm, '')
    .replace(/(\*\*|__|~~|`)/g, '')
    .replace(/(^|[\s(])[*_]([^*_\s][^*_]*)[*_](?=[\s.,;:!?)]|$)/g, '$1$2')
    .replace(/\s+/g, ' ')
    .trim()
  return text.length > max ? `${text.slice(0, max - 1)}…` : text
}
