import { createRouter, createWebHistory, type RouteRecordRaw } from 'vue-router'
import { useAuth } from '@/stores/auth'
import { useToasts } from '@/stores/toast'

const routes: RouteRecordRaw[] = [
  { path: '/login', name: 'login', component: () => import('@/pages/LoginPage.vue'), meta: { public: true } },
  { path: '/register', name: 'register', component: () => import('@/pages/RegisterPage.vue'), meta: { public: true } },
  { path: '/reset', name: 'reset', component: () => import('@/pages/ResetPage.vue'), meta: { public: true } },
  {
    path: '/',
    component: () => import('@/components/AppLayout.vue'),
    children: [
      { path: '', name: 'home', component: () => import('@/pages/HomePage.vue') },
      { path: 'chat/:id', name: 'chat', component: () => import('@/pages/ChatPage.vue'), props: true },
      { path: 'billing', name: 'billing', component: () => import('@/pages/BillingPage.vue') },
      { path: 'settings', name: 'settings', component: () => import('@/pages/SettingsPage.vue') },
    ],
  },
  // the public, read-only replay of a shared session: outside the logged-in layout
  { path: '/share/:id', name: 'shared', component: () => import('@/pages/SharedPage.vue'), props: true, meta: { public: true } },
  { path: '/:pathMatch(.*)*', name: 'not-found', component: () => import('@/pages/NotFoundPage.vue'), meta: { public: true } },
]

export const router = createRouter({ history: createWebHistory(), routes })

// After a new version is deployed, the chunks this page knows are gone: load the page anew
// (once per target, so a broken build cannot loop).
router.onError((e: unknown, to) => {
  const msg = e instanceof Error ? e.message : String(e)
  if (!/dynamically imported module|Importing a module script failed|error loading dynamically/i.test(msg)) return
  const key = `ironhand.reloaded:${to.fullPath}`
  if (sessionStorage.getItem(key)) {
    useToasts().error(e)
    return
  }
  sessionStorage.setItem(key, '1')
  window.location.assign(to.fullPath)
})

router.beforeEach(async (to) => {
  const auth = useAuth()
  if (!auth.ready) {
    try {
      await auth.init()
    } catch (e) {
      useToasts().error(e)
    }
  }
  if (!to.meta.public && !auth.loggedIn) return { name: 'login', query: { next: to.fullPath } }
  if ((to.name === 'login' || to.name === 'register') && auth.loggedIn) return { name: 'home' }
  return true
})
