// Who is logged in. A login answers a short-lived access token (minutes) and a refresh
// token; the store renews the pair before the access token expires (and once on a 401),
// so a page can stay open for days. Both live in sessionStorage (one browser tab's
// session): closing the tab forgets them; logging out also ends the login on the server.
// Password login today; single sign-on and device codes are other ways to the same pair.
import { defineStore } from 'pinia'
import { computed, ref } from 'vue'
import { api, request, setTransport } from '@/api/http'
import type { Token, User } from '@/api/types'

const KEY = 'tolu.session'
/** renew this long before the access token expires */
const AHEAD_MS = 60_000

interface Saved {
  token: string
  refreshToken: string | null
  username: string
  expiresAt: string
}

function load(storage: Storage | undefined): Saved | null {
  try {
    const raw = storage?.getItem(KEY)
    const saved = raw ? (JSON.parse(raw) as Saved) : null
    if (saved && (saved.refreshToken || new Date(saved.expiresAt).getTime() > Date.now())) return saved
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
  let refreshToken: string | null = saved?.refreshToken ?? null
  let renewing: Promise<boolean> | null = null
  let timer: ReturnType<typeof setTimeout> | null = null

  const loggedIn = computed(() => token.value !== null)

  function remember(t: Token): void {
    token.value = t.access_token
    refreshToken = t.refresh_token ?? refreshToken
    username.value = t.username
    expiresAt.value = t.expires_at
    notice.value = null
    const entry: Saved = { token: t.access_token, refreshToken, username: t.username, expiresAt: t.expires_at }
    storage?.setItem(KEY, JSON.stringify(entry))
    schedule()
  }

  function schedule(): void {
    if (timer !== null) clearTimeout(timer)
    timer = null
    if (!refreshToken || !expiresAt.value) return
    const wait = new Date(expiresAt.value).getTime() - Date.now() - AHEAD_MS
    timer = setTimeout(() => void renew(), Math.max(0, wait))
  }

  /** A new pair from the refresh token (which rotates: the old one is spent). False when
   *  the login is over (revoked, expired, account disabled); the caller logs out. */
  function renew(): Promise<boolean> {
    const secret = refreshToken
    if (!secret) return Promise.resolve(false)
    renewing ??= (async () => {
      try {
        remember(
          await request<Token>('POST', '/auth/token', {
            form: { grant_type: 'refresh_token', refresh_token: secret },
            auth: false,
          }),
        )
        return true
      } catch {
        return false
      } finally {
        renewing = null
      }
    })()
    return renewing
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
    if (refreshToken) {
      // end the login on the server too (RFC 7009); nothing to wait for
      void request('POST', '/auth/revoke', { form: { token: refreshToken }, auth: false }).catch(() => undefined)
    }
    refreshToken = null
    if (timer !== null) clearTimeout(timer)
    timer = null
    token.value = null
    username.value = null
    expiresAt.value = null
    user.value = null
    notice.value = reason
    storage?.removeItem(KEY)
  }

  setTransport({
    token: () => token.value,
    unauthorized: async () => {
      if (await renew()) return true
      logout('Your session ended (expired or revoked): log in again.')
      return false
    },
  })
  schedule()

  return { token, username, expiresAt, user, notice, loggedIn, remember, renew, loginWithPassword, whoami, logout }
})
