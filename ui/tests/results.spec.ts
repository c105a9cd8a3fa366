import { describe, expect, it } from 'vitest'
import type { AreaSummary, Matrix, MatrixCell, TrendPoint } from '@/api/types'
import { cellsOfNight, countsText, failureLine, newestNightWithRuns, parseAim, trendLines } from '@/lib/results'

const area: AreaSummary = {
  area: 'server', outcome: 'failed', passed: 12, failed: 1, error: 0, skipped: 3, xfailed: 0, xpassed: 0, total: 16,
}

function cell(night: string, siteId: number, location: string, name: string): MatrixCell {
  return {
    ...area, area: name, site_id: siteId, location, night, run: 1, run_id: 'r', kind: 'tests',
    started_at: `${night}T02:00:00Z`, commit: null, reasons: [], more_reasons: 0,
  }
}

describe('the results pages', () => {
  it('show the counts that are not zero', () => {
    expect(countsText(area)).toBe('12 passed, 1 failed, 3 skipped')
    expect(countsText({ ...area, passed: 0, failed: 0, skipped: 0 })).toBe('nothing ran')
  })

  it('file the cells of a night by row and area, and start at the newest night with runs', () => {
    const matrix: Matrix = {
      after: '', before: '', nights: ['2026-11-03', '2026-11-02', '2026-11-01'], rows: [], areas: ['api', 'server'],
      cells: [cell('2026-11-02', 1, 'ci', 'server'), cell('2026-11-02', 1, 'ci', 'api'), cell('2026-11-01', 2, 'x', 'api')],
    }
    expect(newestNightWithRuns(matrix)).toBe('2026-11-02')
    const night = cellsOfNight(matrix, '2026-11-02')
    expect([...night.keys()]).toEqual(['1/ci'])
    expect(night.get('1/ci')!.get('api')!.area).toBe('api')
    expect(newestNightWithRuns({ ...matrix, cells: [] })).toBeNull()
  })

  it('say why a test failed with pytest\'s first E line, else the last line', () => {
    expect(failureLine('def test():\n>       assert x\nE       assert 4 == 5\nE   second\n\nt.py:3: AssertionError')).toBe('assert 4 == 5')
    expect(failureLine('t.py:3: AssertionError\n')).toBe('t.py:3: AssertionError')
    expect(failureLine(null)).toBe('')
  })

  it('draw an aim only when it is a plain bound', () => {
    expect(parseAim('>= 0.8')).toEqual({ op: '>=', bound: 0.8 })
    expect(parseAim('<2')).toEqual({ op: '<', bound: 2 })
    expect(parseAim('between 1 and 2')).toBeNull()
    expect(parseAim(null)).toBeNull()
  })

  it('draw a ratio with its aim and the in-run baseline, a missing median as a gap', () => {
    const points = [0.9, null, 0.7].map(
      (m, i): TrendPoint => ({
        run: i, run_id: `r${i}`, site_id: 1, location: 'ci', machine: 'h', commit: null, load: [],
        started_at: '2026-11-01T00:00:00Z', figures: m === null ? {} : { ratio_run: { median: m, min: m, max: m } },
      }),
    )
    const lines = trendLines('ratio_run', { unit: 'ratio', better: 'higher', aim: '>= 0.8', description: '' }, points)
    expect(lines.map((l) => l.label)).toEqual(['ratio_run (median)', 'aim >= 0.8', 'in-run baseline (1.0)'])
    expect(lines[0].values).toEqual([0.9, null, 0.7])
    expect(lines[1].values).toEqual([0.8, 0.8, 0.8])
    expect(trendLines('jobs_per_s', undefined, points).length).toBe(1)
  })
})
