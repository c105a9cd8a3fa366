import { describe, expect, it } from 'vitest'
import { Deduper } from '@/lib/dedup'

describe('Deduper', () => {
  it('accepts an id once and forgets ids the cursor has passed', () => {
    const d = new Deduper()
    expect(d.accept(5)).toBe(true)
    expect(d.accept(5)).toBe(false)
    expect(d.accept(7)).toBe(true)
    d.advance(5)
    expect(d.cursor).toBe(5)
    expect(d.pending).toBe(1) // 7 kept
    expect(d.accept(4)).toBe(false) // settled
    expect(d.accept(6)).toBe(true) // a late one above the cursor
    expect(d.accept(7)).toBe(false)
  })

  it('never moves the cursor back', () => {
    const d = new Deduper()
    d.advance(10)
    d.advance(3)
    expect(d.cursor).toBe(10)
  })
})
