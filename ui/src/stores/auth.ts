// Who is logged in. The token lives in sessionStorage (one browser tab's session), so
// closing the tab logs out. Password login today; device-code approval and single
// sign-on plug in as other ways to obtain the same bearer token (see LoginView.vue).
import { defineStore } from 'pinia'
import { computed, ref } from 'vue'
import { api, setTransport } from '@/api/http'
import type { Token, User } from '@/api/types'

const KEY = 'tolu.session'

interface Saved {
  token: string
  username: string
  expiresAt: string
}

function load(storage: Storage | undefined): Saved | null {
  try {
    const raw = storage?.getItem(KEY)
    const saved = raw ? (JSON.parse(raw) as Saved) : null
    if (saved && new Date(saved.expiresAt).getTime() > Date.now()) return saved
  } catch {
    // a damaged entry is the same as none
  }
  return null
}

export const useAuth = defineStore('auth', () => {
  const storage = typeof sessionStorage === 'undefined' ? undefined : sessionStorage
  const saved = load(storage)
  const token = ref<string | null>(saved?.token ?? null)
  const username = ref<string | null>(saved?.username ?? null)
  const expiresAt = ref<string | null>(saved?.expiresAt ?? null)
  const user = ref<User | null>(null)
  /** why the last session ended, shown on the login page */
  const notice = ref<string | null>(null)

  const loggedIn = computed(() => token.value !== null)

  function remember(t: Token): void {
    token.value = t.access_token
    username.value = t.username
    expiresAt.value = t.expires_at
    notice.value = null
    storage?.setItem(KEY, JSON.stringify({ token: t.access_token, username: t.username, expiresAt: t.expires_at }))
  }

  async function loginWithPassword(name: string, password: string): Promise<void> {
    const t = await api.post<Token>('/users/login', { username: name, password })
    remember(t)
    await whoami()
  }

  async function whoami(): Promise<User | null> {
    if (!token.value) return null
    user.value = await api.get<User>('/users/me')
    return user.value
  }

  function logout(reason: string | null = null): void {
    token.value = null
    username.value = null
    expiresAt.value = null
    user.value = null
    notice.value = reason
    storage?.removeItem(KEY)
  }

  setTransport({
    token: () => token.value,
    unauthorized: () => logout('Your session ended (token expired or revoked): log in again.'),
  })

  return { token, username, expiresAt, user, notice, loggedIn, remember, loginWithPassword, whoami, logout }
})
