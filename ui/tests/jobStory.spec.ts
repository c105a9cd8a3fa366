import { describe, expect, it } from 'vitest'
import type { JobEvent } from '@/api/types'
import { failureReason, outputTail } from '@/lib/jobStory'

const ev = (id: number, to_state: JobEvent['to_state'], data: Record<string, unknown> = {}): JobEvent => ({
  id,
  job_id: 1,
  from_state: null,
  to_state,
  timestamp: '2024-01-01T00:00:00Z',
  data,
})

describe('what the events say about a failure', () => {
  it('joins the verdict and the cause of the last error', () => {
    const events = [
      ev(1, 'RUNNING'),
      ev(2, 'RUN_ERROR', { return_code: 3, tail: 'first try' }),
      ev(3, 'RESTART_READY'),
      ev(4, 'RUN_ERROR', { return_code: 4, tail: 'boom\n' }),
      ev(5, 'FAILED', { reason: 'RUN_ERROR: retry limit 1 reached' }),
    ]
    expect(failureReason(events)).toBe('RUN_ERROR: retry limit 1 reached — RUN_ERROR: exited with code 4')
    expect(outputTail(events)).toBe('boom\n')
  })

  it('prefers a stated reason, and says nothing for a job that did not fail', () => {
    expect(failureReason([ev(1, 'RUN_TIMEOUT', { reason: 'job wall time 1 min exceeded' })])).toBe(
      'job wall time 1 min exceeded',
    )
    expect(failureReason([ev(1, 'FAILED', { reason: 'parent job 7 is FAILED' })])).toBe('parent job 7 is FAILED')
    expect(failureReason([ev(1, 'RUNNING'), ev(2, 'RUN_DONE')])).toBeNull()
    expect(outputTail([ev(1, 'RUN_DONE')])).toBeNull()
  })
})
