import { createPinia, setActivePinia } from 'pinia'
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { api, ApiError } from '@/api/http'
import { useAuth } from '@/stores/auth'

function reply(status: number, body: unknown): Response {
  return new Response(JSON.stringify(body), { status, headers: { 'Content-Type': 'application/json' } })
}

describe('the auth store', () => {
  const calls: { url: string; init: RequestInit }[] = []
  let answers: Response[] = []

  beforeEach(() => {
    sessionStorage.clear()
    calls.length = 0
    answers = []
    vi.stubGlobal('fetch', async (url: string, init: RequestInit) => {
      calls.push({ url, init })
      return answers.shift() ?? reply(500, { detail: 'no answer' })
    })
    setActivePinia(createPinia())
  })
  afterEach(() => vi.unstubAllGlobals())

  it('logs in with a password, sends the token, and keeps it for the tab', async () => {
    const expires = new Date(Date.now() + 3600_000).toISOString()
    answers = [
      reply(200, { access_token: 'T1', token_type: 'bearer', expires_at: expires, username: 'ann' }),
      reply(200, { id: 7, username: 'ann', created_at: expires }),
    ]
    const auth = useAuth()
    await auth.loginWithPassword('ann', 'secret-password')
    expect(calls[0].url).toBe('/users/login')
    expect(JSON.parse(String(calls[0].init.body))).toEqual({ username: 'ann', password: 'secret-password' })
    expect((calls[1].init.headers as Record<string, string>).Authorization).toBe('Bearer T1')
    expect(auth.user?.id).toBe(7)
    // a new page in the same tab finds the session
    setActivePinia(createPinia())
    expect(useAuth().token).toBe('T1')
  })

  it('a 401 on any request ends the session with a notice', async () => {
    const auth = useAuth()
    auth.remember({ access_token: 'T2', token_type: 'bearer', expires_at: new Date(Date.now() + 60_000).toISOString(), username: 'ann' })
    answers = [reply(401, { detail: 'token expired; log in again (tolu login)' })]
    await expect(api.get('/jobs')).rejects.toBeInstanceOf(ApiError)
    expect(auth.loggedIn).toBe(false)
    expect(auth.notice).toMatch(/log in again/)
    expect(sessionStorage.length).toBe(0)
  })

  it('renews an expired access token with the refresh token and asks again, once', async () => {
    const auth = useAuth()
    const soon = new Date(Date.now() + 600_000).toISOString()
    auth.remember({ access_token: 'old', token_type: 'bearer', expires_at: soon, username: 'ann', refresh_token: 'R1' })
    answers = [
      reply(401, { detail: 'token expired' }),
      reply(200, { access_token: 'new', token_type: 'bearer', expires_at: soon, username: 'ann', refresh_token: 'R2' }),
      reply(200, { count: 0, results: [] }),
    ]
    expect(await api.get('/jobs')).toEqual({ count: 0, results: [] })
    expect(calls.map((c) => c.url)).toEqual(['/jobs', '/auth/token', '/jobs'])
    expect(String(calls[1].init.body)).toBe('grant_type=refresh_token&refresh_token=R1')
    expect((calls[2].init.headers as Record<string, string>).Authorization).toBe('Bearer new')
    expect(auth.token).toBe('new')
    // logging out ends the login on the server with the newest refresh token
    answers = [reply(200, {})]
    auth.logout()
    expect(calls.at(-1)?.url).toBe('/auth/revoke')
    expect(String(calls.at(-1)?.init.body)).toBe('token=R2')
  })

  it('keeps the field errors of a 422', async () => {
    useAuth()
    const detail = [{ loc: ['body', 0, 'resources', 'num_nodes'], msg: 'Input should be greater than or equal to 1', type: 'greater_than_equal' }]
    answers = [reply(422, { detail })]
    const err = await api.post('/jobs', []).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(ApiError)
    expect((err as ApiError).fields).toEqual(detail)
    expect((err as ApiError).message).toBe('body.0.resources.num_nodes: Input should be greater than or equal to 1')
  })
})
