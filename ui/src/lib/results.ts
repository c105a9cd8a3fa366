// What the results pages compute from the server's answers (docs/results.md): the cells of the
// site x area matrix, the aim of a figure as a number to draw, a trend's chart series.
import type { AreaOutcome, AreaSummary, FigureInfo, Matrix, MatrixCell, TrendPoint } from '@/api/types'

/** A Vuetify color per area outcome: passed green, failed red, skipped grey. */
export function outcomeColor(outcome: AreaOutcome | string): string {
  return outcome === 'passed' ? 'success' : outcome === 'failed' ? 'error' : 'grey'
}

/** ``12 passed, 1 failed, 3 skipped``: the counts an area cell shows (zeros left out). */
export function countsText(a: AreaSummary): string {
  const parts: [number, string][] = [
    [a.passed, 'passed'],
    [a.failed, 'failed'],
    [a.error, 'error'],
    [a.skipped, 'skipped'],
    [a.xfailed, 'xfailed'],
    [a.xpassed, 'xpassed'],
  ]
  const shown = parts.filter(([n]) => n > 0).map(([n, what]) => `${n} ${what}`)
  return shown.length ? shown.join(', ') : 'nothing ran'
}

/** One line saying why a test failed, as the server groups failures (runner/server/results/
 * summaries.py, failure_line): pytest's first ``E`` line, else the last line. */
export function failureLine(longrepr: string | null | undefined): string {
  const lines = (longrepr ?? '').split('\n').map((l) => l.trimEnd()).filter((l) => l.trim())
  const e = lines.find((l) => l.startsWith('E '))
  return e !== undefined ? e.slice(1).trim() : (lines[lines.length - 1]?.trim() ?? '')
}

/** One matrix row: a site at a location. */
export function rowKey(siteId: number, location: string): string {
  return `${siteId}/${location}`
}

/** The cells of one night, by row and area: ``cells.get(rowKey)?.get(area)``. */
export function cellsOfNight(matrix: Matrix, night: string): Map<string, Map<string, MatrixCell>> {
  const out = new Map<string, Map<string, MatrixCell>>()
  for (const cell of matrix.cells) {
    if (cell.night !== night) continue
    const key = rowKey(cell.site_id, cell.location)
    if (!out.has(key)) out.set(key, new Map())
    out.get(key)!.set(cell.area, cell)
  }
  return out
}

/** The newest night that has a cell (the matrix's nights run newest first), or null. */
export function newestNightWithRuns(matrix: Matrix): string | null {
  const nights = new Set(matrix.cells.map((c) => c.night))
  return matrix.nights.find((n) => nights.has(n)) ?? null
}

/** An aim such as ``>= 0.8`` as the number to draw a line at, and its direction; null when the
 * aim is not a plain bound. */
export function parseAim(aim: string | null | undefined): { bound: number; op: string } | null {
  const m = /^\s*(>=|<=|>|<)\s*(-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)\s*$/.exec(aim ?? '')
  return m ? { op: m[1], bound: Number(m[2]) } : null
}

/** A ratio compares with a baseline measured in the same run: 1 is as fast as the baseline. */
export function isRatio(figure: string): boolean {
  return figure.startsWith('ratio_')
}

export interface TrendLine {
  label: string
  values: (number | null)[]
  color: string
}

/** A figure over the trend's runs: its medians, the aim line and, for a ratio, the in-run
 * baseline (1.0). */
export function trendLines(figure: string, info: FigureInfo | undefined, points: TrendPoint[]): TrendLine[] {
  const lines: TrendLine[] = [
    { label: `${figure} (median)`, values: points.map((p) => p.figures[figure]?.median ?? null), color: '#1565c0' },
  ]
  const aim = parseAim(info?.aim)
  if (aim) lines.push({ label: `aim ${info!.aim}`, values: points.map(() => aim.bound), color: '#2e7d32' })
  if (isRatio(figure)) lines.push({ label: 'in-run baseline (1.0)', values: points.map(() => 1), color: '#9e9e9e' })
  return lines
}
