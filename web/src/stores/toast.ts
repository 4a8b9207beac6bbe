import { defineStore } from 'pinia'
import { ref } from 'vue'
import { ApiError } from '@/api/client'
import { i18n } from '@/i18n'

export interface Toast {
  id: number
  kind: 'error' | 'info'
  text: string
}

let next = 1

/** Turns any failure into a sentence for the user (429 → "try again in N s"). */
export function describeError(e: unknown): string {
  const t = i18n.global.t
  if (e instanceof ApiError) {
    if (e.status === 429) return t('errors.rateLimited', { n: e.retryAfter ?? 60 })
    if (e.status === 0) return t('errors.network')
    return e.msg || t('errors.generic')
  }
  if (e instanceof Error) return e.message
  return t('errors.generic')
}

export const useToasts = defineStore('toasts', () => {
  const toasts = ref<Toast[]>([])

  function push(text: string, kind: Toast['kind'] = 'info', ttlMs = 6000): void {
    const id = next++
    toasts.value.push({ id, kind, text })
    if (ttlMs > 0) setTimeout(() => dismiss(id), ttlMs)
  }
  function error(e: unknown): void {
    push(describeError(e), 'error', 10000)
  }
  function dismiss(id: number): void {
    toasts.value = toasts.value.filter((t) => t.id !== id)
  }
  return { toasts, push, error, dismiss }
})
