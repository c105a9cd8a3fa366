/**
 * Drops Events already applied. The stream resends, after a reconnect, what came after
 * the cursor it last reported, and may also deliver late Events (a transaction that
 * committed after later ids) out of order. Ids at or below the cursor are settled; above
 * it, the ids seen are kept until the cursor passes them.
 */
export class Deduper {
  private seen = new Set<number>()
  private settled = 0

  get cursor(): number {
    return this.settled
  }

  /** True the first time ``id`` is offered, false after (or when it is settled). */
  accept(id: number): boolean {
    if (id <= this.settled || this.seen.has(id)) return false
    this.seen.add(id)
    return true
  }

  /** The server says every id up to ``cursor`` has been sent: forget those. */
  advance(cursor: number): void {
    if (cursor <= this.settled) return
    this.settled = cursor
    for (const id of this.seen) if (id <= cursor) this.seen.delete(id)
  }

  /** ids kept above the cursor (for tests and the status line) */
  get pending(): number {
    return this.seen.size
  }
}
