// The live connection: one EventStream for the whole page, and the views that listen.
// A view subscribes while it is shown and gets each batch of Events; most use it to
// refetch their summary at most every few seconds (useLiveRefresh), the jobs table also
// applies states to the rows it shows at once.
import { defineStore } from 'pinia'
import { ref, watch } from 'vue'
import { EventStream, streamUrl, type StreamStatus } from '@/api/stream'
import type { StreamEvent } from '@/api/types'
import { useAuth } from './auth'

export type Listener = (events: StreamEvent[]) => void

export const useLive = defineStore('live', () => {
  const status = ref<StreamStatus>('idle')
  const detail = ref<string | null>(null)
  const received = ref(0)
  const cursor = ref<number | null>(null)
  /** Events per second over the last few batches */
  const rate = ref(0)
  const listeners = new Set<Listener>()
  let stream: EventStream | null = null
  const window: { t: number; n: number }[] = []

  function deliver(events: StreamEvent[]): void {
    received.value += events.length
    cursor.value = stream?.cursor ?? null
    const now = Date.now()
    window.push({ t: now, n: events.length })
    while (window.length && now - window[0].t > 5000) window.shift()
    rate.value = Math.round(window.reduce((s, w) => s + w.n, 0) / 5)
    for (const listener of listeners) {
      try {
        listener(events)
      } catch (err) {
        console.error('live listener failed', err)
      }
    }
  }

  function start(): void {
    if (stream) return
    const auth = useAuth()
    stream = new EventStream({
      url: streamUrl(),
      token: () => auth.token,
      onEvents: deliver,
      onStatus: (s, d) => {
        status.value = s
        detail.value = d ?? null
        cursor.value = stream?.cursor ?? null
        if (s === 'unauthorized' && auth.loggedIn) {
          // the token expired while the page slept, or the login ended: renew, or log out
          void auth.renew().then((ok) => {
            if (!ok) auth.logout('Your session ended: log in again.')
            else {
              stop()
              start()
            }
          })
        }
      },
    })
    stream.start()
  }

  // a renewed access token goes to the open stream
  watch(
    () => useAuth().token,
    (t) => {
      if (t) stream?.renew(t)
    },
  )

  function stop(): void {
    stream?.stop()
    stream = null
    status.value = 'idle'
  }

  /** For tests and the status menu: drop the connection as a network failure would. */
  function drop(): void {
    stream?.drop()
  }

  function subscribe(listener: Listener): () => void {
    listeners.add(listener)
    return () => listeners.delete(listener)
  }

  return { status, detail, received, cursor, rate, start, stop, drop, subscribe }
})
