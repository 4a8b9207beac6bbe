import { describe, expect, it } from 'vitest'
import ToolPill from '@/components/ToolPill.vue'
import ToolPanel from '@/components/ToolPanel.vue'
import { i18n } from '@/i18n'
import { capText, MCP_DISPLAY_MAX, mcpResultText, parseMcpFunction } from '@/lib/mcp'
import { applyEvent, createTimeline } from '@/lib/timeline'
import { toolIcon, type ToolItem } from '@/lib/tools'
import { mountWith } from './helpers'

function mcpTool(over: Partial<ToolItem> = {}): ToolItem {
  return {
    kind: 'tool',
    key: 'm1',
    toolCallId: 'm1',
    name: 'mcp',
    function: 'mcp__github__search_issues',
    args: { query: 'is:open label:bug', repo: 'acme/app', limit: 5 },
    status: 'called',
    content: { result: 'Found 2 issues:\n#12 Crash on start\n#15 Typo' },
    timestamp: 1,
    ...over,
  }
}

function panel(tools: ToolItem[]) {
  return mountWith(ToolPanel, { props: { tools, selected: null, live: false, active: false, sessionId: 's1' } })
}

describe('MCP tool names', () => {
  it('split at the first two "__"', () => {
    expect(parseMcpFunction('mcp__github__search_issues')).toEqual({ server: 'github', tool: 'search_issues' })
    expect(parseMcpFunction('mcp__my-srv__ns__do_it')).toEqual({ server: 'my-srv', tool: 'ns__do_it' })
    for (const bad of ['shell_exec', 'mcp__', 'mcp__github', 'mcp__github__', 'mcp____tool', 'MCP__a__b']) {
      expect(parseMcpFunction(bad), bad).toBeNull()
    }
    expect(toolIcon('mcp')).toBe('plug')
  })

  it('results as text, cut to a length a page can show', () => {
    expect(mcpResultText({ result: 'hi' })).toBe('hi')
    expect(mcpResultText({ result: { a: 1 } })).toBe('{\n  "a": 1\n}')
    expect(mcpResultText({})).toBeNull()
    expect(mcpResultText(null)).toBeNull()
    expect(capText('abc', 5)).toEqual({ text: 'abc', truncated: false, total: 3 })
    // code points, never half a surrogate pair
    expect(capText('😀😀😀', 2)).toEqual({ text: '😀😀', truncated: true, total: 3 })
  })
})

describe('MCP tool pills', () => {
  it('say "server · tool" with the connector icon', () => {
    const w = mountWith(ToolPill, { props: { item: mcpTool() } })
    expect(w.get('[data-test=tool-label]').text()).toBe('github · search_issues')
    // the one argument that says what the call is about, without repeating the function name
    expect(w.get('code').text()).toBe('is:open label:bug')
    expect(w.text()).not.toContain('mcp__github__search_issues')
    expect(w.get('svg path').attributes('d')).toContain('M9 2v6')
    w.unmount()
  })

  it('an MCP name that does not parse keeps "MCP" and the function', () => {
    const w = mountWith(ToolPill, { props: { item: mcpTool({ function: 'weird', args: {} }) } })
    expect(w.get('[data-test=tool-label]').text()).toBe('MCP')
    expect(w.get('code').text()).toBe('weird')
    w.unmount()
  })

  it('come from `tool` events like every other call', () => {
    const tl = createTimeline()
    applyEvent(tl, {
      event: 'tool',
      data: {
        event_id: '1',
        timestamp: 1,
        tool_call_id: 'c1',
        name: 'mcp',
        function: 'mcp__notes__create_note',
        args: { title: 'Hello' },
        status: 'called',
        content: { result: 'created note 7' },
      },
    })
    const item = tl.items.find((i): i is ToolItem => i.kind === 'tool')!
    const w = mountWith(ToolPill, { props: { item } })
    expect(w.get('[data-test=tool-label]').text()).toBe('notes · create_note')
    w.unmount()
  })
})

describe('the tool panel with an MCP call', () => {
  it('shows the label, the arguments as JSON and the result as text', () => {
    const w = panel([mcpTool()])
    expect(w.get('[data-test=tool-label]').text()).toBe('github · search_issues')
    expect(w.get('[data-test=tool-summary]').text()).toBe('mcp__github__search_issues: is:open label:bug')
    const args = w.get('[data-test=mcp-args]')
    expect(args.element.tagName).toBe('PRE')
    expect(JSON.parse(args.text())).toEqual({ query: 'is:open label:bug', repo: 'acme/app', limit: 5 })
    expect(args.text()).toContain('\n  "repo": "acme/app"')
    const result = w.get('[data-test=mcp-result]')
    expect(result.element.tagName).toBe('PRE')
    expect(result.classes()).toEqual(expect.arrayContaining(['font-mono', 'overflow-auto']))
    expect(result.attributes('tabindex')).toBe('0')
    expect(result.attributes('aria-label')).toBe('Result')
    expect(result.text()).toBe('Found 2 issues:\n#12 Crash on start\n#15 Typo')
    expect(w.find('[data-test=mcp-truncated]').exists()).toBe(false)
    expect(w.find('[data-test=generic-content]').exists()).toBe(false)
    w.unmount()
  })

  it('a result is text, never markup', () => {
    const w = panel([mcpTool({ content: { result: '<img src=x onerror=alert(1)><b>bold</b>' } })])
    expect(w.get('[data-test=mcp-result]').text()).toBe('<img src=x onerror=alert(1)><b>bold</b>')
    expect(w.find('[data-test=mcp-result] img').exists()).toBe(false)
    w.unmount()
  })

  it('caps a long result and says how long it was', () => {
    const long = 'x'.repeat(MCP_DISPLAY_MAX + 5000)
    const w = panel([mcpTool({ content: { result: long } })])
    expect(w.get('[data-test=mcp-result]').text()).toHaveLength(MCP_DISPLAY_MAX)
    expect(w.get('[data-test=mcp-truncated]').text()).toBe(`Showing the first ${MCP_DISPLAY_MAX} of ${MCP_DISPLAY_MAX + 5000} characters.`)
    w.unmount()
  })

  it('while it runs, and without arguments', () => {
    const w = panel([mcpTool({ status: 'calling', content: null, args: {} })])
    expect(w.get('[data-test=mcp-args]').text()).toBe('No arguments.')
    expect(w.get('[data-test=mcp-no-result]').text()).toBe('Waiting for output…')
    expect(w.get('[data-test=tool-status]').text()).toBe('Running')
    w.unmount()
  })

  it('is labelled in every language', () => {
    for (const locale of ['en', 'zh-CN', 'ar'] as const) {
      i18n.global.locale.value = locale
      expect(i18n.global.t('tool.mcpCall', { server: 's', tool: 't' }), locale).toBe('s · t')
      for (const k of ['args', 'noArgs', 'result', 'truncated']) expect(i18n.global.te(`panel.${k}`), `${locale} ${k}`).toBe(true)
    }
    i18n.global.locale.value = 'en'
  })
})
