// The REST API's shapes, as runner/models.py declares them (the server's OpenAPI at
// /openapi.json is the reference). Timestamps are ISO 8601 strings in UTC.

export const JOB_STATES = [
  'CREATED',
  'AWAITING_PARENTS',
  'READY',
  'STAGED_IN',
  'PREPROCESSED',
  'RUNNING',
  'RUN_DONE',
  'RUN_ERROR',
  'RUN_TIMEOUT',
  'RESTART_READY',
  'POSTPROCESSED',
  'STAGED_OUT',
  'JOB_FINISHED',
  'FAILED',
  'KILLED',
] as const
export type JobState = (typeof JOB_STATES)[number]

export const BATCH_JOB_STATES = [
  'pending_submission',
  'submit_failed',
  'queued',
  'running',
  'pending_deletion',
  'finished',
  'failed',
  'unknown',
] as const
export type BatchJobState = (typeof BATCH_JOB_STATES)[number]

export interface Page<T> {
  count: number
  results: T[]
}

export interface User {
  id: number
  username: string
  created_at: string
}

export interface Token {
  access_token: string
  token_type: 'bearer'
  expires_at: string
  expires_in?: number
  username: string
  /** logins only: exchange at POST /auth/token for the next pair */
  refresh_token?: string | null
  scope?: 'full' | 'read' | 'site'
  site_id?: number | null
}

export interface Site {
  id: number
  name: string
  path: string
  hostname: string
  owner: string
  settings_summary: Record<string, unknown>
  last_heartbeat: string | null
  created_at: string
}

export interface Resources {
  num_nodes: number
  ranks_per_node: number
  threads_per_rank: number
  gpus_per_rank: number
  node_packing_count: number
  wall_time_min: number
}

export interface App {
  id: number
  site_id: number
  name: string
  description: string
  kind: 'shell' | 'python'
  command_template: string | null
  serialized_function: string | null
  parameters: Record<string, unknown>
  default_resources: Resources
  environment: Record<string, string>
  hooks: string[]
  created_at: string
  updated_at: string
}

export interface Job extends Resources {
  id: number
  app_id: number
  site_id: number
  state: JobState
  parents: number[]
  parameters: Record<string, unknown>
  tags: Record<string, string>
  environment: Record<string, string>
  workdir: string
  return_code: number | null
  retry_count: number
  retry_limit: number
  data: Record<string, unknown>
  batch_job_id: number | null
  session_id: number | null
  created_at: string
  updated_at: string
}

export interface JobCreate {
  app_id: number
  parents?: number[]
  parameters?: Record<string, unknown>
  tags?: Record<string, string>
  resources?: Resources
  retry_limit?: number
}

export interface JobEvent {
  id: number
  job_id: number
  from_state: JobState | null
  to_state: JobState
  timestamp: string
  data: Record<string, unknown>
}

/** An Event as the live stream sends it: no ``data`` (fetch the job's events for that). */
export interface StreamEvent {
  id: number
  job_id: number
  site_id: number
  from_state: JobState | null
  to_state: JobState
  timestamp: string
}

export interface BatchJob {
  id: number
  site_id: number
  scheduler_id: string | null
  project: string
  queue: string
  num_nodes: number
  wall_time_min: number
  job_mode: 'mpi' | 'serial'
  filter_tags: Record<string, string>
  options: Record<string, string>
  state: BatchJobState
  status_info: Record<string, unknown>
  start_time: string | null
  end_time: string | null
  created_at: string
  updated_at: string
}

export interface TransferItem {
  id: number
  job_id: number
  direction: 'in' | 'out'
  source: string
  destination: string
  recursive: boolean
  state: 'pending' | 'active' | 'done' | 'error'
  task_id: string | null
  error: string | null
  updated_at: string
}

export interface StateCount {
  state: JobState
  count: number
}

export interface SiteStats {
  site_id: number
  name: string
  hostname: string
  last_heartbeat: string | null
  agent_alive: boolean
  agent_alive_sec: number
  jobs: Partial<Record<JobState, number>>
  batch_jobs_queued: number
  batch_jobs_running: number
  nodes_total: number
  nodes_busy: number
  nodes_free: number
}

export interface HistoryPoint {
  time: string
  finished: number
  failed: number
  running: number
  busy_nodes: number
  available_nodes: number
}

export interface History {
  start: string
  end: string
  interval_sec: number
  points: HistoryPoint[]
  finished: number
  failed: number
}

/** One entry of a 422's ``detail``. */
export interface FieldError {
  loc: (string | number)[]
  msg: string
  type: string
}

// ---------------------------------------------------------------- published runs (docs/results.md)

export type RunKind = 'tests' | 'bench' | 'pipeline'
export type AreaOutcome = 'passed' | 'failed' | 'skipped'

export interface Reason {
  outcome: string
  reason: string
  count: number
  names: string[]
}

export interface AreaSummary {
  area: string
  outcome: AreaOutcome
  passed: number
  failed: number
  error: number
  skipped: number
  xfailed: number
  xpassed: number
  total: number
}

export interface RunScenario {
  key: string
  command: string
  name: string
  description: string
  parameters: Record<string, unknown>
}

export interface Run {
  id: number
  site_id: number
  run_id: string
  kind: RunKind
  title: string
  location: string
  machine: string
  commit: string | null
  load: number[]
  started_at: string
  duration_s: number | null
  ok: boolean
  summary: Record<string, number>
  digest: string
  published_at: string
  areas: AreaSummary[]
  scenarios: RunScenario[]
}

export interface MatrixRow {
  site_id: number
  site_name: string
  location: string
}

export interface MatrixCell extends AreaSummary {
  site_id: number
  location: string
  night: string
  run: number
  run_id: string
  kind: RunKind
  started_at: string
  commit: string | null
  reasons: Reason[]
  more_reasons: number
}

export interface Matrix {
  after: string
  before: string
  nights: string[]
  rows: MatrixRow[]
  areas: string[]
  cells: MatrixCell[]
}

export interface FigureInfo {
  unit: string
  better: string
  aim: string | null
  description: string
}

export interface FigureStat {
  median: number | null
  min: number | null
  max: number | null
}

export interface TrendPoint {
  run: number
  run_id: string
  site_id: number
  location: string
  machine: string
  commit: string | null
  load: number[]
  started_at: string
  figures: Record<string, FigureStat>
}

export interface Trend {
  scenario: RunScenario | null
  figure_info: Record<string, FigureInfo>
  points: TrendPoint[]
}

export interface ScenarioSummary extends RunScenario {
  runs: number
  last_started_at: string
  locations: string[]
  site_ids: number[]
}
