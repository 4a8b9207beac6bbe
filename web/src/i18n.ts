import { createI18n } from 'vue-i18n'
import en from './locales/en'
import zhCN from './locales/zh-CN'
import ar from './locales/ar'

export const LOCALES = [
  { code: 'en', name: 'English', dir: 'ltr' },
  { code: 'zh-CN', name: '简体中文', dir: 'ltr' },
  { code: 'ar', name: 'العربية', dir: 'rtl' },
] as const
export type Locale = (typeof LOCALES)[number]['code']

const KEY = 'ironhand.locale'

function initialLocale(): Locale {
  const saved = typeof localStorage !== 'undefined' ? localStorage.getItem(KEY) : null
  if (saved && LOCALES.some((l) => l.code === saved)) return saved as Locale
  const nav = typeof navigator !== 'undefined' ? navigator.language : 'en'
  if (nav.toLowerCase().startsWith('zh')) return 'zh-CN'
  if (nav.toLowerCase().startsWith('ar')) return 'ar'
  return 'en'
}

const dateFormats = {
  short: { year: 'numeric', month: 'short', day: 'numeric' },
  long: { year: 'numeric', month: 'short', day: 'numeric', hour: 'numeric', minute: '2-digit' },
} as const

export const i18n = createI18n({
  legacy: false,
  locale: initialLocale(),
  fallbackLocale: 'en',
  messages: { en, 'zh-CN': zhCN, ar },
  datetimeFormats: { en: dateFormats, 'zh-CN': dateFormats, ar: dateFormats },
})

/** Sets the language, and `lang`/`dir` on <html> (Arabic is right-to-left). */
export function setLocale(code: Locale): void {
  i18n.global.locale.value = code
  const meta = LOCALES.find((l) => l.code === code)!
  document.documentElement.lang = code
  document.documentElement.dir = meta.dir
  try {
    localStorage.setItem(KEY, code)
  } catch {
    // storage unavailable (private mode): the choice lasts for this page only
  }
}

export function applyCurrentLocale(): void {
  setLocale(i18n.global.locale.value as Locale)
}
