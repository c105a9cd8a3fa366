// What a job's Events say about it: why it failed, the tail of its output.
import type { JobEvent } from '@/api/types'

function text(value: unknown): string | null {
  return typeof value === 'string' && value.trim() ? value : null
}

/**
 * Why the job failed, from its Events (newest first): the FAILED Event's ``reason``
 * (the server's retry verdict, a failed parent, a hook), else the latest ``reason`` or
 * ``error`` of its last RUN_ERROR/RUN_TIMEOUT (or the exit code it reported).
 * Null while the job has not failed or errored.
 */
export function failureReason(events: JobEvent[]): string | null {
  const newest = [...events].sort((a, b) => b.id - a.id)
  const failed = newest.find((e) => e.to_state === 'FAILED')
  const errored = newest.find((e) => e.to_state === 'RUN_ERROR' || e.to_state === 'RUN_TIMEOUT')
  const parts: string[] = []
  const verdict = failed ? text(failed.data.reason) ?? text(failed.data.error) : null
  if (verdict) parts.push(verdict)
  if (errored) {
    const rc = errored.data.return_code
    const cause =
      text(errored.data.reason) ??
      text(errored.data.error) ??
      (typeof rc === 'number' ? `${errored.to_state}: exited with code ${rc}` : null)
    if (cause && cause !== verdict) parts.push(cause)
  }
  if (!failed && !errored) return null
  return parts.length ? parts.join(' — ') : `${(failed ?? errored)!.to_state} (no reason given)`
}

/** The newest output tail an Event carries (launchers attach it to failed runs). */
export function outputTail(events: JobEvent[]): string | null {
  const newest = [...events].sort((a, b) => b.id - a.id)
  for (const e of newest) {
    const tail = text(e.data.tail)
    if (tail) return tail
  }
  return null
}
