// The create-jobs form: one field per app parameter, its kind read from the default
// (an app declares ``name: default``; ``null`` marks a required parameter).

export type ParamKind = 'integer' | 'number' | 'boolean' | 'text' | 'json'

export interface ParamSpec {
  name: string
  kind: ParamKind
  required: boolean
  default: unknown
}

export function paramKind(value: unknown): ParamKind {
  if (typeof value === 'boolean') return 'boolean'
  if (typeof value === 'number') return Number.isInteger(value) ? 'integer' : 'number'
  if (value !== null && typeof value === 'object') return 'json'
  return 'text'
}

export function paramSpecs(parameters: Record<string, unknown>): ParamSpec[] {
  return Object.entries(parameters).map(([name, value]) => ({
    name,
    kind: paramKind(value),
    required: value === null || value === undefined,
    default: value,
  }))
}

/** The text a field starts with. */
export function initialText(spec: ParamSpec): string {
  if (spec.required) return ''
  if (spec.kind === 'json') return JSON.stringify(spec.default)
  return String(spec.default)
}

export type Parsed = { ok: true; value: unknown } | { ok: false; error: string }

/** The value to send for what was typed, or why it cannot be sent. */
export function parseParam(spec: ParamSpec, text: string | boolean): Parsed {
  if (spec.kind === 'boolean') return { ok: true, value: Boolean(text) }
  const raw = String(text ?? '')
  if (raw.trim() === '') {
    if (spec.required) return { ok: false, error: `${spec.name} is required` }
    return { ok: true, value: spec.default }
  }
  switch (spec.kind) {
    case 'integer':
      return /^[+-]?\d+$/.test(raw.trim())
        ? { ok: true, value: Number.parseInt(raw, 10) }
        : { ok: false, error: `${spec.name} must be a whole number` }
    case 'number': {
      const n = Number(raw)
      return raw.trim() !== '' && Number.isFinite(n)
        ? { ok: true, value: n }
        : { ok: false, error: `${spec.name} must be a number` }
    }
    case 'json':
      try {
        return { ok: true, value: JSON.parse(raw) }
      } catch {
        return { ok: false, error: `${spec.name} must be JSON (like its default)` }
      }
    default:
      return { ok: true, value: raw }
  }
}

/** ``key=value`` or ``key:value`` per line or comma -> tags; errors name the bad piece. */
export function parseTags(text: string): { tags: Record<string, string>; errors: string[] } {
  const tags: Record<string, string> = {}
  const errors: string[] = []
  for (const piece of text.split(/[\n,]/)) {
    const item = piece.trim()
    if (!item) continue
    const m = /^([^=:]+)[=:](.*)$/.exec(item)
    if (!m || !m[1].trim()) {
      errors.push(`"${item}" is not key=value`)
      continue
    }
    tags[m[1].trim()] = m[2].trim()
  }
  return { tags, errors }
}

/** Job ids, separated by commas or blanks. */
export function parseIds(text: string): { ids: number[]; errors: string[] } {
  const ids: number[] = []
  const errors: string[] = []
  for (const piece of text.split(/[\s,]+/)) {
    if (!piece) continue
    if (/^\d+$/.test(piece)) ids.push(Number(piece))
    else errors.push(`"${piece}" is not a job id`)
  }
  return { ids, errors }
}
