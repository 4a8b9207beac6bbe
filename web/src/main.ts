import { createApp } from 'vue'
import { createPinia } from 'pinia'
import App from './App.vue'
import { router } from './router'
import { applyCurrentLocale, i18n } from './i18n'
import { applyTheme, watchSystemTheme } from './lib/theme'
import './style.css'

applyTheme()
watchSystemTheme()
applyCurrentLocale()

createApp(App).use(createPinia()).use(router).use(i18n).mount('#app')
