import { describe, expect, it } from 'vitest'
import { applyEvent, applyEvents, createTimeline, planProgress, type SseEvent } from '@/lib/timeline'

let n = 0
const ev = (event: string, data: Record<string, unknown> = {}, id?: string): SseEvent => ({
  event,
  data: { event_id: id ?? String(++n).padStart(6, '0'), timestamp: 1700000000, ...data },
})

describe('timeline reducer', () => {
  it('applies events in order and tracks the cursor', () => {
    const t = applyEvents(createTimeline(), [
      ev('message', { role: 'user', content: 'hi', attachments: [] }, 'a1'),
      ev('title', { title: 'Greeting' }, 'a2'),
      ev('message', { role: 'assistant', content: 'hello', attachments: [] }, 'a3'),
      ev('done', {}, 'a4'),
    ])
    expect(t.items.map((i) => i.kind)).toEqual(['message', 'message', 'done'])
    expect(t.title).toBe('Greeting')
    expect(t.lastEventId).toBe('a4')
    expect(t.run).toBe('done')
  })

  it('ignores duplicates by event_id (replay after reconnect)', () => {
    const t = createTimeline()
    const e1 = ev('message', { role: 'user', content: 'hi' }, 'b1')
    const e2 = ev('tool', { tool_call_id: 'c', name: 'shell', function: 'shell_exec', args: {}, status: 'calling' }, 'b2')
    expect(applyEvent(t, e1)).toBe(true)
    expect(applyEvent(t, e2)).toBe(true)
    expect(applyEvent(t, e1)).toBe(false)
    expect(applyEvent(t, e2)).toBe(false)
    expect(t.items).toHaveLength(2)
  })

  it('message_delta streams text and the following message replaces it', () => {
    const t = applyEvents(createTimeline(), [
      ev('message_delta', { role: 'assistant', delta: 'Hel' }),
      ev('message_delta', { role: 'assistant', delta: 'lo wor' }),
    ])
    expect(t.items).toHaveLength(1)
    const m = t.items[0]!
    expect(m.kind === 'message' && m.content).toBe('Hello wor')
    expect(m.kind === 'message' && m.streaming).toBe(true)
    applyEvent(t, ev('message', { role: 'assistant', content: 'Hello world!', attachments: [] }))
    expect(t.items).toHaveLength(1)
    expect(m.kind === 'message' && m.content).toBe('Hello world!')
    expect(m.kind === 'message' && m.streaming).toBe(false)
    // the next delta starts a new message
    applyEvent(t, ev('message_delta', { role: 'assistant', delta: 'Next' }))
    expect(t.items).toHaveLength(2)
  })

  it('reset: true clears the streamed text', () => {
    const t = applyEvents(createTimeline(), [
      ev('message_delta', { role: 'assistant', delta: 'draft one' }),
      ev('message_delta', { role: 'assistant', delta: 'Second', reset: true }),
      ev('message_delta', { role: 'assistant', delta: ' try' }),
    ])
    const m = t.items[0]!
    expect(m.kind === 'message' && m.content).toBe('Second try')
  })

  it('a tool call is updated in place from calling to called', () => {
    const t = applyEvents(createTimeline(), [
      ev('tool', { tool_call_id: 't1', name: 'shell', function: 'shell_exec', args: { command: 'ls' }, status: 'calling' }),
      ev('tool', {
        tool_call_id: 't1', name: 'shell', function: 'shell_exec', args: { command: 'ls' }, status: 'called',
        content: { console: [{ ps1: '$', command: 'ls', output: 'a b' }] },
      }),
    ])
    expect(t.items).toHaveLength(1)
    const it0 = t.items[0]!
    expect(it0.kind === 'tool' && it0.status).toBe('called')
    expect(it0.kind === 'tool' && it0.content?.console?.[0]?.output).toBe('a b')
  })

  it('plan and step update the plan progress', () => {
    const t = applyEvents(createTimeline(), [
      ev('plan', { steps: [{ id: '1', description: 'one', status: 'pending' }, { id: '2', description: 'two', status: 'pending' }] }),
      ev('step', { id: '1', description: 'one', status: 'running' }),
      ev('step', { id: '1', description: 'one', status: 'completed' }),
    ])
    expect(planProgress(t.plan)).toEqual({ done: 1, total: 2 })
    expect(t.items.filter((i) => i.kind === 'step')).toHaveLength(1)
  })

  it('error, wait and done set the run state', () => {
    const t = createTimeline()
    applyEvent(t, ev('wait'))
    expect(t.run).toBe('waiting')
    applyEvent(t, ev('message', { role: 'user', content: 'go on' }))
    expect(t.run).toBe('running')
    applyEvent(t, ev('error', { error: 'The model is unavailable.' }))
    applyEvent(t, ev('done'))
    expect(t.run).toBe('failed')
    expect(t.items.some((i) => i.kind === 'error' && i.error === 'The model is unavailable.')).toBe(true)
  })

  it('ignores unknown events', () => {
    const t = applyEvents(createTimeline(), [ev('something_new', { x: 1 })])
    expect(t.items).toHaveLength(0)
  })
})

describe('an interrupted tool call', () => {
  it('stops being "calling" when the run ends, fails or waits', () => {
    for (const end of ['done', 'error', 'wait']) {
      const t = applyEvents(createTimeline(), [
        { event: 'tool', data: { event_id: 'e1', tool_call_id: 'c1', name: 'shell', function: 'shell_exec', args: { id: 's', command: 'sleep 30' }, status: 'calling' } },
        { event: end, data: { event_id: 'e2', error: 'stopped' } },
      ])
      const tool = t.items.find((i) => i.kind === 'tool')
      expect(tool && tool.kind === 'tool' && tool.status, end).toBe('called')
    }
  })
})
