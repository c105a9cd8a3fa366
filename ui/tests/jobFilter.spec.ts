import { describe, expect, it } from 'vitest'
import { emptyFilter, fromRoute, ordering, toApi, toRoute } from '@/lib/jobFilter'

describe('the jobs table filter', () => {
  it('round-trips through the URL and drops what is not valid', () => {
    const f = fromRoute({ site_id: '3', state: ['FAILED', 'NOPE'], tags: 'run=a', parent_id: 'x', created_after: '2024-01-01T00:00:00.000Z' })
    expect(f).toEqual({ ...emptyFilter(), site_id: 3, state: ['FAILED'], tags: 'run=a', created_after: '2024-01-01T00:00:00.000Z' })
    expect(fromRoute(toRoute(f))).toEqual(f)
    expect(toRoute(emptyFilter())).toEqual({})
  })

  it('sends tags as key:value and leaves empty filters out', () => {
    const q = toApi({ ...emptyFilter(), tags: 'run=a, b=c', state: ['RUNNING'] })
    expect(q.tags).toEqual(['run:a', 'b:c'])
    expect(q.state).toEqual(['RUNNING'])
    expect(q.site_id).toBeUndefined()
  })

  it('maps the table sort to ordering, newest first by default', () => {
    expect(ordering([])).toBe('-id')
    expect(ordering([{ key: 'updated_at', order: 'desc' }])).toBe('-updated_at')
    expect(ordering([{ key: 'state', order: 'asc' }])).toBe('state')
    expect(ordering([{ key: 'tags', order: 'asc' }])).toBe('-id') // not sortable on the server
  })
})
