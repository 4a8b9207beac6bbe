/** Reactive media queries (e.g. the `lg` breakpoint that switches between drawer and column). */
import { getCurrentInstance, onBeforeUnmount, ref, type Ref } from 'vue'

/** Tailwind's `lg` breakpoint (64rem). */
export const LG = '(min-width: 64rem)'

/**
 * True while `query` matches; false where `matchMedia` does not exist (tests, old
 * browsers). The listener is removed when the calling component unmounts.
 */
export function useMediaQuery(query: string): Ref<boolean> {
  const mq = typeof window !== 'undefined' && typeof window.matchMedia === 'function' ? window.matchMedia(query) : null
  const matches = ref(mq?.matches ?? false)
  if (mq) {
    const update = (e: MediaQueryListEvent) => (matches.value = e.matches)
    mq.addEventListener?.('change', update)
    if (getCurrentInstance()) onBeforeUnmount(() => mq.removeEventListener?.('change', update))
  }
  return matches
}
