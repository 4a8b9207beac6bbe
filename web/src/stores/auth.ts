import { defineStore } from 'pinia'
import { computed, ref } from 'vue'
import { ApiError, call, clearTokens, getRefreshToken, onAuthChange, refreshAccessToken, setCookieMode, setTokens } from '@/api/client'
import { setMaxUploadBytes } from '@/lib/files'
import type { AuthResponse, AuthStatusResponse, UserResponse } from '@/api/types'

export const useAuth = defineStore('auth', () => {
  const user = ref<UserResponse | null>(null)
  const status = ref<AuthStatusResponse | null>(null)
  const ready = ref(false)
  const loggedIn = computed(() => user.value !== null)

  onAuthChange((ok) => {
    if (!ok) user.value = null
  })

  /** On start: learn the auth mode, then try the refresh cookie to restore a session. */
  async function init(): Promise<void> {
    if (ready.value) return
    try {
      status.value = await call('get', '/api/v1/auth/status', { auth: false })
      setCookieMode(status.value.refresh_cookie)
      setMaxUploadBytes(status.value.max_upload_bytes)
      if (status.value.auth_provider === 'none' || (await refreshAccessToken())) {
        user.value = await call('get', '/api/v1/auth/me')
      }
    } catch (e) {
      // not logged in is fine; anything else is reported by the caller
      if (!(e instanceof ApiError && e.status === 401)) throw e
    } finally {
      ready.value = true
    }
  }

  function accept(r: AuthResponse): void {
    setTokens(r.access_token, r.refresh_token)
    user.value = r.user
  }

  async function login(email: string, password: string): Promise<void> {
    accept(await call('post', '/api/v1/auth/login', { body: { email, password }, auth: false }))
  }

  async function register(fullname: string, email: string, password: string): Promise<void> {
    accept(await call('post', '/api/v1/auth/register', { body: { fullname, email, password }, auth: false }))
  }

  async function logout(): Promise<void> {
    try {
      await call('post', '/api/v1/auth/logout', { body: { refresh_token: getRefreshToken() } })
    } finally {
      clearTokens()
      user.value = null
    }
  }

  return { user, status, ready, loggedIn, init, login, register, logout }
})
