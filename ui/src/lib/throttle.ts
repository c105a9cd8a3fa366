/**
 * ``fn`` at most once per ``ms``, never two at once, and never dropping the last call:
 * what a page does when thousands of Events a second say "something changed" and it
 * must fetch a summary again.
 */
export interface Throttled {
  (): void
  cancel(): void
}

export function throttle(fn: () => Promise<unknown> | unknown, ms: number): Throttled {
  let timer: ReturnType<typeof setTimeout> | null = null
  let running = false
  let again = false
  let last = -Infinity
  let cancelled = false

  const run = async () => {
    timer = null
    if (cancelled) return
    running = true
    again = false
    last = Date.now()
    try {
      await fn()
    } catch {
      // the page shows its own errors; a failed refresh is retried on the next change
    } finally {
      running = false
      if (again && !cancelled) schedule()
    }
  }
  const schedule = () => {
    if (timer !== null) return
    if (running) {
      again = true
      return
    }
    timer = setTimeout(run, Math.max(0, last + ms - Date.now()))
  }
  const throttled = (() => schedule()) as Throttled
  throttled.cancel = () => {
    cancelled = true
    if (timer !== null) clearTimeout(timer)
    timer = null
  }
  return throttled
}
