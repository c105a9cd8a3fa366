import type { JobState } from '@/api/types'

/** A Vuetify color per job state: finished green, failed red, running blue, trouble amber. */
export function stateColor(state: string): string {
  switch (state) {
    case 'JOB_FINISHED':
      return 'success'
    case 'FAILED':
      return 'error'
    case 'KILLED':
      return 'grey'
    case 'RUNNING':
      return 'info'
    case 'RUN_ERROR':
    case 'RUN_TIMEOUT':
    case 'RESTART_READY':
      return 'warning'
    case 'running':
    case 'active':
      return 'info'
    case 'finished':
    case 'done':
      return 'success'
    case 'error':
    case 'failed':
    case 'submit_failed':
      return 'error'
    default:
      return 'default'
  }
}

export const FINAL_STATES: JobState[] = ['JOB_FINISHED', 'FAILED', 'KILLED']

export function when(iso: string | null | undefined): string {
  if (!iso) return '—'
  const d = new Date(iso)
  return Number.isNaN(d.getTime()) ? iso : d.toLocaleString()
}

export function ago(iso: string | null | undefined, now: number = Date.now()): string {
  if (!iso) return 'never'
  const sec = Math.max(0, Math.round((now - new Date(iso).getTime()) / 1000))
  if (sec < 60) return `${sec} s ago`
  if (sec < 3600) return `${Math.floor(sec / 60)} min ago`
  if (sec < 86400) return `${Math.floor(sec / 3600)} h ago`
  return `${Math.floor(sec / 86400)} d ago`
}

export function duration(sec: number): string {
  if (sec < 60) return `${sec} s`
  if (sec < 3600) return `${sec / 60} min`
  if (sec < 86400) return `${sec / 3600} h`
  return `${sec / 86400} d`
}

export function tagsText(tags: Record<string, string>): string {
  return Object.entries(tags)
    .map(([k, v]) => `${k}=${v}`)
    .join(', ')
}

/** ``datetime-local`` input text (local time) -> ISO UTC, or undefined when empty. */
export function localToIso(text: string | null | undefined): string | undefined {
  if (!text) return undefined
  const d = new Date(text)
  return Number.isNaN(d.getTime()) ? undefined : d.toISOString()
}

/** ISO -> ``datetime-local`` input text (local time, minutes). */
export function isoToLocal(iso: string | null | undefined): string {
  if (!iso) return ''
  const d = new Date(iso)
  if (Number.isNaN(d.getTime())) return ''
  const pad = (n: number) => String(n).padStart(2, '0')
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`
}
