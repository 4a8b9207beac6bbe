/**
 * The chat timeline: a reducer that applies the session's SSE events (docs/api.md, "SSE
 * events") in order. Events already applied (same `event_id`) are ignored, so a replay after a
 * reconnect, or the history from GET /sessions/{id} followed by the live stream, never
 * shows anything twice.
 */
import type { FileInfo } from '@/api/types'
import { toFileInfos } from './files'

export type StepStatus = 'pending' | 'running' | 'completed' | 'failed'

export interface PlanStep {
  id: string
  description: string
  status: StepStatus
}

export interface ConsoleLine {
  ps1?: string
  command?: string
  output?: string
}

export interface SearchResult {
  title?: string
  link?: string
  snippet?: string
}

export interface ToolContent {
  console?: ConsoleLine[]
  content?: string
  results?: SearchResult[]
  screenshot?: string
  result?: unknown
}

export type TimelineItem =
  | {
      kind: 'message'
      key: string
      role: 'user' | 'assistant'
      content: string
      attachments: FileInfo[]
      /** true while `message_delta`s are still arriving for it */
      streaming: boolean
      timestamp: number
    }
  | {
      kind: 'tool'
      key: string
      toolCallId: string
      name: string
      function: string
      args: Record<string, unknown>
      status: 'calling' | 'called'
      content: ToolContent | null
      timestamp: number
    }
  | { kind: 'step'; key: string; stepId: string; description: string; status: StepStatus; timestamp: number }
  | { kind: 'error'; key: string; error: string; timestamp: number }
  | { kind: 'wait'; key: string; timestamp: number }
  | { kind: 'done'; key: string; timestamp: number }
  /** the user took control of the browser (`user`) or handed it back (`agent`) */
  | { kind: 'takeover'; key: string; status: BrowserControl; timestamp: number }

export type RunState = 'idle' | 'running' | 'waiting' | 'done' | 'failed'

/** Who controls the agent's browser: the agent, or the user after a take-over. */
export type BrowserControl = 'agent' | 'user'

export interface Timeline {
  items: TimelineItem[]
  plan: PlanStep[]
  title: string | null
  /** cursor for reconnects: the last applied event_id */
  lastEventId: string | null
  seen: Set<string>
  run: RunState
  /** from the latest `takeover` event (`agent` until there is one) */
  control: BrowserControl
}

export interface SseEvent {
  event: string
  data: Record<string, unknown>
}

export function createTimeline(): Timeline {
  return { items: [], plan: [], title: null, lastEventId: null, seen: new Set(), run: 'idle', control: 'agent' }
}

const str = (v: unknown, d = ''): string => (typeof v === 'string' ? v : v == null ? d : String(v))
const num = (v: unknown): number => (typeof v === 'number' ? v : Number(v) || 0)
const STEP_STATUSES: StepStatus[] = ['pending', 'running', 'completed', 'failed']
const stepStatus = (v: unknown): StepStatus =>
  STEP_STATUSES.includes(v as StepStatus) ? (v as StepStatus) : 'pending'

function streamingIndex(t: Timeline): number {
  for (let i = t.items.length - 1; i >= 0; i--) {
    const it = t.items[i]!
    if (it.kind === 'message' && it.role === 'assistant' && it.streaming) return i
  }
  return -1
}

/** Applies one event; returns false when it was a duplicate (already applied). */
export function applyEvent(t: Timeline, ev: SseEvent): boolean {
  const d = ev.data ?? {}
  const id = d.event_id == null ? null : str(d.event_id)
  if (id !== null) {
    if (t.seen.has(id)) return false
    t.seen.add(id)
    t.lastEventId = id
  }
  const key = id ?? `${ev.event}-${t.items.length}`
  const ts = num(d.timestamp)

  switch (ev.event) {
    case 'message': {
      const role = d.role === 'user' ? 'user' : 'assistant'
      const attachments = toFileInfos(d.attachments)
      const content = str(d.content)
      const si = role === 'assistant' ? streamingIndex(t) : -1
      if (si >= 0) {
        // the final message replaces the streamed text
        const it = t.items[si]!
        if (it.kind === 'message') {
          it.content = content
          it.attachments = attachments
          it.streaming = false
          it.timestamp = ts
        }
      } else {
        t.items.push({ kind: 'message', key, role, content, attachments, streaming: false, timestamp: ts })
      }
      if (role === 'user' && t.run !== 'running') t.run = 'running'
      break
    }
    case 'message_delta': {
      const si = streamingIndex(t)
      const delta = str(d.delta)
      if (si >= 0) {
        const it = t.items[si]!
        if (it.kind === 'message') it.content = d.reset === true ? delta : it.content + delta
      } else {
        t.items.push({ kind: 'message', key, role: 'assistant', content: delta, attachments: [], streaming: true, timestamp: ts })
      }
      t.run = 'running'
      break
    }
    case 'tool': {
      const toolCallId = str(d.tool_call_id, key)
      const status = d.status === 'called' ? 'called' : 'calling'
      const content = d.content && typeof d.content === 'object' ? (d.content as ToolContent) : null
      const args = d.args && typeof d.args === 'object' ? (d.args as Record<string, unknown>) : {}
      const existing = t.items.find((i) => i.kind === 'tool' && i.toolCallId === toolCallId)
      if (existing && existing.kind === 'tool') {
        existing.status = status
        if (content) existing.content = content
        if (Object.keys(args).length) existing.args = args
        existing.timestamp = ts
      } else {
        t.items.push({
          kind: 'tool', key, toolCallId, name: str(d.name), function: str(d.function), args, status, content, timestamp: ts,
        })
      }
      t.run = 'running'
      break
    }
    case 'plan': {
      const steps = Array.isArray(d.steps) ? (d.steps as Record<string, unknown>[]) : []
      t.plan = steps.map((s) => ({ id: str(s.id), description: str(s.description), status: stepStatus(s.status) }))
      break
    }
    case 'step': {
      const stepId = str(d.id)
      const status = stepStatus(d.status)
      const description = str(d.description)
      const p = t.plan.find((s) => s.id === stepId)
      if (p) {
        p.status = status
        if (description) p.description = description
      }
      const existing = t.items.find((i) => i.kind === 'step' && i.stepId === stepId)
      if (existing && existing.kind === 'step') {
        existing.status = status
        if (description) existing.description = description
      } else {
        t.items.push({ kind: 'step', key, stepId, description, status, timestamp: ts })
      }
      break
    }
    case 'title':
      t.title = str(d.title) || t.title
      break
    case 'error':
      t.items.push({ kind: 'error', key, error: str(d.error, 'Something went wrong.'), timestamp: ts })
      t.run = 'failed'
      settleTools(t)
      break
    case 'wait':
      t.items.push({ kind: 'wait', key, timestamp: ts })
      t.run = 'waiting'
      settleTools(t)
      break
    case 'takeover': {
      // an unknown status (a later version's) changes nothing
      if (d.status !== 'user' && d.status !== 'agent') break
      t.control = d.status
      t.items.push({ kind: 'takeover', key, status: d.status, timestamp: ts })
      break
    }
    case 'done': {
      settleTools(t)
      const si = streamingIndex(t)
      if (si >= 0) {
        const it = t.items[si]!
        if (it.kind === 'message') it.streaming = false
      }
      t.items.push({ kind: 'done', key, timestamp: ts })
      if (t.run !== 'failed') t.run = 'done'
      break
    }
    default:
      // unknown events are ignored (forward compatible)
      break
  }
  return true
}

/**
 * The run is over (or waits for the user): a tool call still `calling` was interrupted (a
 * stop ends a command without its `called` event) and will not change any more.
 */
export function settleTools(t: Timeline): void {
  for (const it of t.items) if (it.kind === 'tool' && it.status === 'calling') it.status = 'called'
}

export function applyEvents(t: Timeline, evs: SseEvent[]): Timeline {
  for (const e of evs) applyEvent(t, e)
  return t
}

/** Progress of the plan: completed / total. */
export function planProgress(plan: PlanStep[]): { done: number; total: number } {
  return { done: plan.filter((s) => s.status === 'completed').length, total: plan.length }
}
