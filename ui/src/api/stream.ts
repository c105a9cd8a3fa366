// The live event stream (server: runner/server/routes/events_stream.py).
//
// One WebSocket per page. It authenticates with the first message, resumes after a
// reconnect from the last cursor the server reported (nothing lost; repeats dropped by
// id), and hands the page Events in batches, at most one batch per ``flushMs``: a
// launcher that finishes thousands of jobs a second costs the page a few updates a
// second, not thousands.
import { Deduper } from '@/lib/dedup'
import type { StreamEvent } from './types'

export type StreamStatus = 'idle' | 'connecting' | 'live' | 'reconnecting' | 'unauthorized' | 'stopped'

/** The part of the browser's WebSocket the stream uses (tests pass a fake). */
export interface SocketLike {
  onopen: ((ev: unknown) => void) | null
  onmessage: ((ev: { data: unknown }) => void) | null
  onclose: ((ev: { code: number; reason: string }) => void) | null
  onerror: ((ev: unknown) => void) | null
  send(data: string): void
  close(code?: number, reason?: string): void
}

export interface StreamOptions {
  url: string
  token: () => string | null
  onEvents: (events: StreamEvent[]) => void
  onStatus?: (status: StreamStatus, detail?: string) => void
  flushMs?: number
  socket?: (url: string) => SocketLike
  /** milliseconds to wait before reconnect attempt ``n`` (1, 2, ...) */
  backoff?: (attempt: number) => number
}

export const CLOSE_UNAUTHORIZED = 4401
export const CLOSE_INVALID = 4422

type Message =
  | { type: 'ready'; cursor: number; username: string }
  | { type: 'events'; cursor: number; events: StreamEvent[] }
  | { type: 'idle'; cursor: number }
  | { type: 'error'; detail: unknown }

export function defaultBackoff(attempt: number): number {
  return Math.min(15_000, 500 * 2 ** Math.min(attempt - 1, 5))
}

/** ``ws(s)://<this host>/events/stream`` */
export function streamUrl(location: Location = window.location): string {
  const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:'
  return `${scheme}//${location.host}/events/stream`
}

export class EventStream {
  readonly dedup = new Deduper()
  status: StreamStatus = 'idle'
  /** Events received (after dropping repeats) since start */
  received = 0
  private socket: SocketLike | null = null
  private buffer: StreamEvent[] = []
  private flushTimer: ReturnType<typeof setTimeout> | null = null
  private retryTimer: ReturnType<typeof setTimeout> | null = null
  private attempt = 0
  private started = false
  private hasCursor = false

  constructor(private readonly options: StreamOptions) {}

  get cursor(): number | null {
    return this.hasCursor ? this.dedup.cursor : null
  }

  start(): void {
    if (this.started) return
    this.started = true
    this.connect()
  }

  stop(): void {
    this.started = false
    if (this.retryTimer !== null) clearTimeout(this.retryTimer)
    this.retryTimer = null
    this.flush()
    const socket = this.socket
    this.socket = null
    if (socket) {
      socket.onclose = null
      socket.close(1000, 'page closed the stream')
    }
    this.setStatus('stopped')
  }

  /** A renewed access token: the open stream is told (the server checks it again later). */
  renew(token: string): void {
    if (this.status === 'live') this.socket?.send(JSON.stringify({ type: 'token', token }))
  }

  /** Close the connection as a network failure would (the stream reconnects). */
  drop(): void {
    this.socket?.close(4000, 'dropped')
  }

  private setStatus(status: StreamStatus, detail?: string): void {
    this.status = status
    this.options.onStatus?.(status, detail)
  }

  private connect(): void {
    const token = this.options.token()
    if (!token) {
      this.setStatus('unauthorized', 'not logged in')
      return
    }
    this.setStatus(this.attempt === 0 ? 'connecting' : 'reconnecting')
    const make = this.options.socket ?? ((url: string) => new WebSocket(url) as unknown as SocketLike)
    const socket = make(this.options.url)
    this.socket = socket
    socket.onopen = () => {
      socket.send(JSON.stringify({ type: 'hello', token, cursor: this.cursor }))
    }
    socket.onmessage = (ev) => this.receive(String(ev.data))
    socket.onerror = () => undefined // onclose follows and decides
    socket.onclose = (ev) => {
      if (this.socket !== socket) return
      this.socket = null
      if (ev.code === CLOSE_UNAUTHORIZED) {
        this.started = false
        this.setStatus('unauthorized', ev.reason)
        return
      }
      if (!this.started) return
      this.attempt += 1
      this.setStatus('reconnecting', ev.reason || `closed (${ev.code})`)
      const wait = (this.options.backoff ?? defaultBackoff)(this.attempt)
      this.retryTimer = setTimeout(() => {
        this.retryTimer = null
        if (this.started) this.connect()
      }, wait)
    }
  }

  private receive(text: string): void {
    let msg: Message
    try {
      msg = JSON.parse(text) as Message
    } catch {
      return
    }
    switch (msg.type) {
      case 'ready':
        this.attempt = 0
        this.dedup.advance(msg.cursor)
        this.hasCursor = true
        this.setStatus('live')
        break
      case 'events':
        for (const ev of msg.events) {
          if (this.dedup.accept(ev.id)) this.buffer.push(ev)
        }
        this.dedup.advance(msg.cursor)
        this.scheduleFlush()
        break
      case 'idle':
        this.dedup.advance(msg.cursor)
        break
      default:
        break
    }
  }

  private scheduleFlush(): void {
    if (this.flushTimer !== null || this.buffer.length === 0) return
    this.flushTimer = setTimeout(() => this.flush(), this.options.flushMs ?? 250)
  }

  private flush(): void {
    if (this.flushTimer !== null) clearTimeout(this.flushTimer)
    this.flushTimer = null
    if (this.buffer.length === 0) return
    const batch = this.buffer
    this.buffer = []
    batch.sort((a, b) => a.id - b.id)
    this.received += batch.length
    this.options.onEvents(batch)
  }
}
