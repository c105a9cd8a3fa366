import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { CLOSE_UNAUTHORIZED, EventStream, type SocketLike } from '@/api/stream'
import type { StreamEvent } from '@/api/types'

/** A WebSocket stand-in the test drives: it records what the page sent. */
class FakeSocket implements SocketLike {
  onopen: SocketLike['onopen'] = null
  onmessage: SocketLike['onmessage'] = null
  onclose: SocketLike['onclose'] = null
  onerror: SocketLike['onerror'] = null
  sent: unknown[] = []
  closed = false
  send(data: string) {
    this.sent.push(JSON.parse(data))
  }
  close() {
    this.closed = true
  }
  open() {
    this.onopen?.({})
  }
  message(msg: unknown) {
    this.onmessage?.({ data: JSON.stringify(msg) })
  }
  drop(code = 1006, reason = '') {
    this.onclose?.({ code, reason })
  }
}

const ev = (id: number, job_id = id): StreamEvent => ({
  id,
  job_id,
  site_id: 1,
  from_state: 'RUNNING',
  to_state: 'RUN_DONE',
  timestamp: '2024-01-01T00:00:00Z',
})

describe('EventStream', () => {
  let sockets: FakeSocket[]
  let batches: StreamEvent[][]
  let statuses: string[]
  let stream: EventStream

  beforeEach(() => {
    vi.useFakeTimers()
    sockets = []
    batches = []
    statuses = []
    stream = new EventStream({
      url: 'ws://x/events/stream',
      token: () => 'tok',
      onEvents: (e) => batches.push(e),
      onStatus: (s) => statuses.push(s),
      socket: () => {
        const s = new FakeSocket()
        sockets.push(s)
        return s
      },
      flushMs: 250,
      backoff: () => 1000,
    })
  })
  afterEach(() => vi.useRealTimers())

  it('says hello with the token, then hands over events in batches', () => {
    stream.start()
    sockets[0].open()
    expect(sockets[0].sent).toEqual([{ type: 'hello', token: 'tok', cursor: null }])
    sockets[0].message({ type: 'ready', cursor: 100, username: 'u' })
    expect(statuses.at(-1)).toBe('live')
    // thousands of events in several messages become one batch per flush interval
    for (let m = 0; m < 10; m++) {
      sockets[0].message({ type: 'events', cursor: 100 + (m + 1) * 1000, events: Array.from({ length: 1000 }, (_, i) => ev(101 + m * 1000 + i)) })
    }
    expect(batches).toHaveLength(0)
    vi.advanceTimersByTime(250)
    expect(batches).toHaveLength(1)
    expect(batches[0]).toHaveLength(10_000)
    expect(stream.cursor).toBe(10_100)
  })

  it('resumes from its cursor after a dropped connection and drops repeats', () => {
    stream.start()
    sockets[0].open()
    sockets[0].message({ type: 'ready', cursor: 10, username: 'u' })
    // 13 is late: the server's cursor stays at 11 until it comes
    sockets[0].message({ type: 'events', cursor: 11, events: [ev(11), ev(12), ev(14)] })
    sockets[0].drop()
    expect(statuses.at(-1)).toBe('reconnecting')
    vi.advanceTimersByTime(1000)
    expect(sockets).toHaveLength(2)
    sockets[1].open()
    expect(sockets[1].sent).toEqual([{ type: 'hello', token: 'tok', cursor: 11 }])
    sockets[1].message({ type: 'ready', cursor: 11, username: 'u' })
    // the server resends what came after 11: 12 and 14 again, and the late 13
    sockets[1].message({ type: 'events', cursor: 15, events: [ev(12), ev(13), ev(14), ev(15)] })
    vi.advanceTimersByTime(250)
    const ids = batches.flat().map((e) => e.id)
    expect(ids).toEqual([11, 12, 14, 13, 15])
    expect(new Set(ids).size).toBe(ids.length)
  })

  it('stops for good when the token is refused', () => {
    stream.start()
    sockets[0].open()
    sockets[0].drop(CLOSE_UNAUTHORIZED, 'token expired')
    vi.advanceTimersByTime(60_000)
    expect(sockets).toHaveLength(1)
    expect(statuses.at(-1)).toBe('unauthorized')
  })
})
