import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { throttle } from '@/lib/throttle'

describe('throttle', () => {
  beforeEach(() => vi.useFakeTimers())
  afterEach(() => vi.useRealTimers())

  it('runs at most once per interval and keeps the last call', async () => {
    const fn = vi.fn(async () => undefined)
    const t = throttle(fn, 1000)
    for (let i = 0; i < 100; i++) t()
    await vi.advanceTimersByTimeAsync(0)
    expect(fn).toHaveBeenCalledTimes(1)
    t() // during the quiet period: one trailing run, later
    t()
    await vi.advanceTimersByTimeAsync(500)
    expect(fn).toHaveBeenCalledTimes(1)
    await vi.advanceTimersByTimeAsync(600)
    expect(fn).toHaveBeenCalledTimes(2)
    await vi.advanceTimersByTimeAsync(5000)
    expect(fn).toHaveBeenCalledTimes(2)
  })

  it('never runs two at once: a call while running runs after it', async () => {
    let release: () => void = () => undefined
    let running = 0
    let most = 0
    const fn = vi.fn(
      () =>
        new Promise<void>((resolve) => {
          running++
          most = Math.max(most, running)
          release = () => {
            running--
            resolve()
          }
        }),
    )
    const t = throttle(fn, 10)
    t()
    await vi.advanceTimersByTimeAsync(0)
    t()
    await vi.advanceTimersByTimeAsync(100)
    expect(fn).toHaveBeenCalledTimes(1)
    release()
    await vi.advanceTimersByTimeAsync(100)
    expect(fn).toHaveBeenCalledTimes(2)
    release()
    expect(most).toBe(1)
  })

  it('does nothing after cancel', async () => {
    const fn = vi.fn()
    const t = throttle(fn, 100)
    t()
    t.cancel()
    await vi.advanceTimersByTimeAsync(1000)
    expect(fn).not.toHaveBeenCalled()
  })
})
