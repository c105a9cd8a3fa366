import { onMounted, onUnmounted } from 'vue'
import type { StreamEvent } from '@/api/types'
import { throttle } from '@/lib/throttle'
import { useLive } from '@/stores/live'

/**
 * Call ``refresh`` when Events arrive that ``matters`` (default: any), at most every
 * ``ms`` milliseconds, while the component is shown; and every ``everyMs`` regardless
 * (things that change without Events, such as an agent's heartbeat going stale).
 */
export function useLiveRefresh(
  refresh: () => Promise<unknown> | unknown,
  ms: number,
  options: { matters?: (events: StreamEvent[]) => boolean; everyMs?: number } = {},
): { trigger: () => void } {
  const live = useLive()
  const run = throttle(refresh, ms)
  let off: (() => void) | null = null
  let timer: ReturnType<typeof setInterval> | null = null
  onMounted(() => {
    off = live.subscribe((events) => {
      if (!options.matters || options.matters(events)) run()
    })
    if (options.everyMs) timer = setInterval(run, options.everyMs)
  })
  onUnmounted(() => {
    off?.()
    run.cancel()
    if (timer !== null) clearInterval(timer)
  })
  return { trigger: run }
}
