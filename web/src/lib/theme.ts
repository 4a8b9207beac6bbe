/** Dark mode by class on <html>: follows the system unless the user picked light or dark. */
import { ref } from 'vue'

export type ThemeChoice = 'system' | 'light' | 'dark'
const KEY = 'ironhand.theme'

export const theme = ref<ThemeChoice>(readChoice())

function readChoice(): ThemeChoice {
  try {
    const v = localStorage.getItem(KEY)
    if (v === 'light' || v === 'dark') return v
  } catch {
    // ignore
  }
  return 'system'
}

function systemDark(): boolean {
  return typeof matchMedia === 'function' && matchMedia('(prefers-color-scheme: dark)').matches
}

export function applyTheme(): void {
  const dark = theme.value === 'dark' || (theme.value === 'system' && systemDark())
  document.documentElement.classList.toggle('dark', dark)
}

export function setTheme(choice: ThemeChoice): void {
  theme.value = choice
  try {
    if (choice === 'system') localStorage.removeItem(KEY)
    else localStorage.setItem(KEY, choice)
  } catch {
    // ignore
  }
  applyTheme()
}

export function watchSystemTheme(): void {
  if (typeof matchMedia !== 'function') return
  matchMedia('(prefers-color-scheme: dark)').addEventListener('change', applyTheme)
}
