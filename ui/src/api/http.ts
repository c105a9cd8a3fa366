// The REST client of the interface: the same public API every script uses.
import type { FieldError } from './types'

export type QueryValue = string | number | boolean | null | undefined | (string | number)[]
export type Query = Record<string, QueryValue>

/** A non-2xx answer: ``status``, and the server's ``detail`` (text, or field errors for 422). */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly detail: string | FieldError[],
  ) {
    super(ApiError.describe(status, detail))
    this.name = 'ApiError'
  }

  /** The field errors of a 422 (``loc`` without its leading "body"/"query"). */
  get fields(): FieldError[] {
    return Array.isArray(this.detail) ? this.detail : []
  }

  static describe(status: number, detail: string | FieldError[]): string {
    if (Array.isArray(detail)) {
      return detail.map((e) => `${e.loc.join('.')}: ${e.msg}`).join('; ')
    }
    return detail || `HTTP ${status}`
  }
}

/** ``?a=1&b=x&b=y``: lists repeat their name, empty values are left out. */
export function queryString(query: Query | undefined): string {
  if (!query) return ''
  const params = new URLSearchParams()
  for (const [key, value] of Object.entries(query)) {
    if (value === undefined || value === null || value === '') continue
    if (Array.isArray(value)) {
      for (const v of value) params.append(key, String(v))
    } else {
      params.append(key, String(value))
    }
  }
  const text = params.toString()
  return text ? `?${text}` : ''
}

export interface Transport {
  token(): string | null
  /** called on a 401: renew the token if possible (true: try the request again once) */
  unauthorized(): Promise<boolean>
}

let transport: Transport = { token: () => null, unauthorized: async () => false }

export function setTransport(t: Transport): void {
  transport = t
}

export async function request<T>(
  method: string,
  path: string,
  options: { query?: Query; body?: unknown; form?: Record<string, string>; auth?: boolean } = {},
  retried = false,
): Promise<T> {
  const headers: Record<string, string> = { Accept: 'application/json' }
  const token = options.auth === false ? null : transport.token()
  if (token) headers.Authorization = `Bearer ${token}`
  let body: string | undefined
  if (options.form !== undefined) {
    headers['Content-Type'] = 'application/x-www-form-urlencoded'
    body = new URLSearchParams(options.form).toString()
  } else if (options.body !== undefined) {
    headers['Content-Type'] = 'application/json'
    body = JSON.stringify(options.body)
  }
  const response = await fetch(path + queryString(options.query), { method, headers, body })
  if (response.status === 204) return undefined as T
  const text = await response.text()
  let payload: unknown = undefined
  try {
    payload = text ? JSON.parse(text) : undefined
  } catch {
    payload = { detail: text }
  }
  if (!response.ok) {
    // an access token lives minutes: renew it once and ask again
    if (response.status === 401 && token && !retried && (await transport.unauthorized())) {
      return request<T>(method, path, options, true)
    }
    const detail = (payload as { detail?: string | FieldError[] } | undefined)?.detail ?? ''
    throw new ApiError(response.status, detail)
  }
  return payload as T
}

export const api = {
  get: <T>(path: string, query?: Query) => request<T>('GET', path, { query }),
  post: <T>(path: string, body?: unknown, query?: Query) => request<T>('POST', path, { body, query }),
  patch: <T>(path: string, body?: unknown, query?: Query) => request<T>('PATCH', path, { body, query }),
  delete: <T>(path: string, query?: Query) => request<T>('DELETE', path, { query }),
}
