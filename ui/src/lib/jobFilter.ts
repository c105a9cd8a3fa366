// The jobs table's filters <-> the page's URL query <-> GET /jobs's query string.
// Kept in the URL so a filtered table is a link (the site cards link to them).
import type { Query } from '@/api/http'
import { JOB_STATES, type JobState } from '@/api/types'
import { parseTags } from './params'

export interface JobFilter {
  site_id: number | null
  app_id: number | null
  state: JobState[]
  tags: string
  created_after: string | null
  created_before: string | null
  parent_id: number | null
  batch_job_id: number | null
}

export const ORDERINGS = ['id', 'created_at', 'updated_at', 'state'] as const

export function emptyFilter(): JobFilter {
  return {
    site_id: null,
    app_id: null,
    state: [],
    tags: '',
    created_after: null,
    created_before: null,
    parent_id: null,
    batch_job_id: null,
  }
}

type RouteQuery = Record<string, string | null | (string | null)[] | undefined>

function one(value: RouteQuery[string]): string | null {
  const v = Array.isArray(value) ? value[0] : value
  return v === undefined || v === null || v === '' ? null : v
}

function int(value: RouteQuery[string]): number | null {
  const v = one(value)
  return v !== null && /^\d+$/.test(v) ? Number(v) : null
}

export function fromRoute(query: RouteQuery): JobFilter {
  const states = ([] as (string | null)[]).concat(query.state ?? [])
  return {
    site_id: int(query.site_id),
    app_id: int(query.app_id),
    state: states.filter((s): s is JobState => JOB_STATES.includes(s as JobState)),
    tags: one(query.tags) ?? '',
    created_after: one(query.created_after),
    created_before: one(query.created_before),
    parent_id: int(query.parent_id),
    batch_job_id: int(query.batch_job_id),
  }
}

/** The page URL's query (only what is set). */
export function toRoute(f: JobFilter): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {}
  if (f.site_id !== null) out.site_id = String(f.site_id)
  if (f.app_id !== null) out.app_id = String(f.app_id)
  if (f.state.length) out.state = [...f.state]
  if (f.tags.trim()) out.tags = f.tags.trim()
  if (f.created_after) out.created_after = f.created_after
  if (f.created_before) out.created_before = f.created_before
  if (f.parent_id !== null) out.parent_id = String(f.parent_id)
  if (f.batch_job_id !== null) out.batch_job_id = String(f.batch_job_id)
  return out
}

/** GET /jobs's query: tags as repeated ``key:value``. */
export function toApi(f: JobFilter): Query {
  const { tags } = parseTags(f.tags)
  return {
    site_id: f.site_id ?? undefined,
    app_id: f.app_id ?? undefined,
    state: f.state.length ? [...f.state] : undefined,
    tags: Object.entries(tags).map(([k, v]) => `${k}:${v}`),
    created_after: f.created_after ?? undefined,
    created_before: f.created_before ?? undefined,
    parent_id: f.parent_id ?? undefined,
    batch_job_id: f.batch_job_id ?? undefined,
  }
}

/** ``ordering`` for GET /jobs from the table's sort (``-`` for descending); newest first by default. */
export function ordering(sortBy: { key: string; order?: 'asc' | 'desc' | boolean }[]): string {
  const s = sortBy[0]
  if (!s || !(ORDERINGS as readonly string[]).includes(s.key)) return '-id'
  return s.order === 'desc' ? `-${s.key}` : s.key
}
