import { createApp } from 'vue'
import { createPinia } from 'pinia'
import App from './App.vue'
import { router } from './router'
import { applyCurrentLocale, i18n } from './i18n'
import { applyTheme, watchSystemTheme } from './lib/theme'
import { useToasts } from './stores/toast'
import './style.css'

applyTheme()
watchSystemTheme()
applyCurrentLocale()

const app = createApp(App).use(createPinia()).use(router).use(i18n)
// errors outside a page's boundary (event handlers, watchers) and promises nobody awaited:
// shown as a toast, never swallowed
app.config.errorHandler = (e) => {
  console.error(e)
  useToasts().error(e)
}
window.addEventListener('unhandledrejection', (ev) => {
  const r: unknown = ev.reason
  if (r instanceof DOMException && r.name === 'AbortError') return // a stream we closed
  useToasts().error(r)
})
app.mount('#app')
