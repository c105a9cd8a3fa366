"""History: throughput, running jobs, busy and available nodes over time, from Events.

``GET /stats/history`` (the History view, and a batch job's utilization plot with
``batch_job_id``). The database does the heavy part in one grouped pass over the
user's Events (no million-row download): per time bucket, the jobs that finished or
failed, and the running-jobs and busy-nodes *changes* (+1 / +nodes when a job enters
RUNNING, -1 / -nodes when it leaves) together with how long before the bucket's end
each change happened. From those sums the levels follow exactly, time-averaged per
bucket, in one loop over at most MAX_BUCKETS buckets:

    average(b) = level(b start) + sum(delta * (end of b - t)) / length of b
    level(b + 1 start) = level(b start) + sum(delta)

Changes before the time axis starts fall into bucket -1: the level the axis starts at.
Available nodes come from the batch jobs' lifetimes (a few rows).
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Connection, Float, Integer, case, cast, func, literal, select

from runner.models import HistoryFilter
from runner.server import bulk
from runner.server import tables as t
from runner.server.auth.principal import Principal
from runner.server.db import to_naive_utc
from runner.server.errors import Invalid
from runner.server.services import batch_jobs
from runner.server.services.common import ensure_owned
from runner.server.services.site_stats import job_weight
from runner.states import BatchJobState, JobState

#: Round bucket lengths, seconds: the axis gets the shortest that keeps <= ``buckets`` points.
NICE_INTERVALS = (
    1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200,
    86400, 2 * 86400, 7 * 86400, 14 * 86400, 30 * 86400,
)  # fmt: skip
#: With neither ``after`` nor a batch job and no Events: this much history up to ``before``.
EMPTY_SPAN = timedelta(hours=1)
_EPOCH = datetime(1970, 1, 1)
_RUNNING = JobState.RUNNING.value
_FINISHED = JobState.JOB_FINISHED.value
_FAILED = JobState.FAILED.value
#: batch-job states in which the allocation still holds its nodes
_HOLDING = (BatchJobState.RUNNING.value, BatchJobState.PENDING_DELETION.value)


def nice_interval(span_sec: float, buckets: int) -> int:
    """The shortest round interval that cuts ``span_sec`` into at most ``buckets`` pieces."""
    raw = span_sec / max(1, buckets)
    for step in NICE_INTERVALS:
        if step >= raw:
            return step
    return int(math.ceil(raw / 86400) * 86400)


def _epoch(value: datetime) -> float:
    return (value - _EPOCH).total_seconds()


def _from_epoch(value: float) -> datetime:
    return _EPOCH + timedelta(seconds=value)


def _event_epoch(conn: Connection) -> ColumnElement[float]:
    """Seconds since 1970 of an Event's timestamp (naive UTC on both databases)."""
    ts = t.events.c.timestamp
    if bulk.is_sqlite(conn):
        return (func.julianday(ts) - 2440587.5) * 86400.0
    return func.date_part("epoch", ts, type_=Float)  # float8 (EXTRACT answers numeric: slower)


def _job_filters(flt: HistoryFilter, who: Principal, job_id: Any) -> list[ColumnElement[bool]]:
    """``job_id`` belongs to a job of the filter's app, batch job and tags."""
    j = t.jobs.c
    out: list[ColumnElement[bool]] = []
    picked: list[ColumnElement[bool]] = []
    if flt.app_id is not None:
        picked.append(j.app_id == flt.app_id)
    if flt.batch_job_id is not None:
        picked.append(j.batch_job_id == flt.batch_job_id)
    if picked:
        out.append(bulk.in_select(job_id, select(j.id).where(who.owns(t.jobs), *picked)))
    for key, value in sorted(flt.tag_dict().items()):
        tagged = select(t.job_tags.c.job_id).where(t.job_tags.c.key == key, t.job_tags.c.value == value)
        out.append(bulk.in_select(job_id, tagged))
    return out


def _first_event(
    conn: Connection, who: Principal, flt: HistoryFilter, to_state: str | None = None
) -> datetime | None:
    """When the matching Events begin. With job filters: the earliest timestamp of their
    jobs' Events (found through the job_id index). Without: the user's first Event by id,
    read from the primary key's start instead of a scan of every Event (its timestamp is
    the earliest but for a late report of an older change: close enough for an axis)."""
    e = t.events.c
    by_job = _job_filters(flt, who, e.job_id)
    stmt = select(func.min(e.timestamp) if by_job else e.timestamp).where(who.owns(t.events), *by_job)
    if to_state is not None:
        stmt = stmt.where(e.to_state == to_state)
    if flt.site_id is not None:
        stmt = stmt.where(e.site_id == flt.site_id)
    if not by_job:
        stmt = stmt.order_by(e.id).limit(1)
    value = conn.execute(stmt).scalar()
    return value if isinstance(value, datetime) else None


def _axis(
    conn: Connection, who: Principal, flt: HistoryFilter, batch: dict[str, Any] | None, now: datetime
) -> tuple[datetime, datetime]:
    end = to_naive_utc(flt.before) if flt.before else None
    start = to_naive_utc(flt.after) if flt.after else None
    if batch is not None:
        if end is None and batch["end_time"] is not None:
            end = batch["end_time"]
        if start is None:
            # the agent notes the start when it next polls the scheduler, so the
            # allocation's first job may have started before its recorded start
            start = batch["start_time"] or batch["created_at"]
            first_run = _first_event(conn, who, flt, _RUNNING)
            if first_run is not None and first_run < start:
                start = first_run
    end = end or now
    if start is None:
        first = _first_event(conn, who, flt)
        start = first if first is not None and first < end else end - EMPTY_SPAN
    if start >= end:
        loc = ["query", "after"] if flt.after else ["query", "before"]
        when = "%Y-%m-%dT%H:%M:%SZ"
        raise Invalid.at(
            loc, f"the time axis is empty: after ({start:{when}}) must be earlier than before ({end:{when}})"
        )
    return start, end


def _bucket_sums(
    conn: Connection, who: Principal, flt: HistoryFilter, t0: float, end: datetime, interval: int
) -> dict[int, tuple[float, ...]]:
    """bucket -> (finished, failed, sum dj, sum dj * x, sum dw, sum dw * x): dj is the change of
    running jobs (+1 into RUNNING, -1 out of it), dw the extra change of busy nodes of jobs
    that use other than one node (dj * (nodes - 1)), x the seconds since ``t0``.

    Sums of ``d * x`` instead of ``d * (bucket end - x)`` (the caller has the bucket ends):
    fewer operations per Event. Only jobs whose node count is not one are joined, so a
    workload of single-node tasks costs no join at all.
    """
    e, j = t.events.c, t.jobs.c
    step = literal(float(interval), Float)  # float arithmetic: PostgreSQL's numeric is far slower
    x = _event_epoch(conn) - literal(t0, Float)
    if bulk.is_sqlite(conn):  # x >= 0 there, so truncation is floor
        bucket: Any = case((x < 0, literal(-1)), else_=cast(x / step, Integer))
    else:
        bucket = cast(func.greatest(func.floor(x / step), -1), Integer)
    dj = case((e.to_state == _RUNNING, 1.0), (e.from_state == _RUNNING, -1.0), else_=0.0)
    dw = dj * func.coalesce(job_weight() - 1.0, 0.0)
    finished = case((e.to_state == _FINISHED, 1), else_=0)
    failed = case((e.to_state == _FAILED, 1), else_=0)
    b = bucket.label("b")
    if not bulk.is_sqlite(conn):
        # Compiling this query to machine code (JIT) costs more than running it; and the
        # planner cannot know there are only ~buckets groups, so with the default 4 MB it
        # sorts the rows on disk instead of hashing them into a few hundred sums.
        conn.exec_driver_sql("SET LOCAL jit = off")
        conn.exec_driver_sql("SET LOCAL work_mem = '64MB'")
    wide = (j.id == e.job_id) & who.owns(t.jobs) & (j.num_nodes != j.node_packing_count)
    stmt = (
        select(
            b,
            func.sum(finished),
            func.sum(failed),
            func.sum(dj),
            func.sum(dj * x),
            func.sum(dw),
            func.sum(dw * x),
        )
        .select_from(t.events.outerjoin(t.jobs, wide))
        .where(
            who.owns(t.events),
            e.timestamp < end,
            (e.to_state.in_([_RUNNING, _FINISHED, _FAILED])) | (e.from_state == _RUNNING),
            *_job_filters(flt, who, e.job_id),
        )
        .group_by(b)
    )
    if flt.site_id is not None:
        stmt = stmt.where(e.site_id == flt.site_id)
    return {int(row[0]): tuple(float(v or 0) for v in row[1:]) for row in conn.execute(stmt)}


def _allocations(
    conn: Connection, who: Principal, flt: HistoryFilter, start: datetime, end: datetime, now: datetime
) -> list[tuple[float, float, int]]:
    """(start, end, nodes) in epoch seconds of the allocations that overlap the axis."""
    b = t.batch_jobs.c
    stmt = select(b.start_time, b.end_time, b.updated_at, b.state, b.num_nodes).where(
        who.owns(t.batch_jobs), b.start_time.is_not(None), b.start_time < end
    )
    if flt.site_id is not None:
        stmt = stmt.where(b.site_id == flt.site_id)
    if flt.batch_job_id is not None:
        stmt = stmt.where(b.id == flt.batch_job_id)
    out = []
    for began, ended, updated, state, nodes in conn.execute(stmt):
        if ended is None:
            # still running: until now; gone without an end time: until its last update
            ended = now if state in _HOLDING else updated
        if ended > start:
            out.append((_epoch(began), _epoch(ended), int(nodes)))
    return out


def _overlap(a0: float, a1: float, b0: float, b1: float) -> float:
    return max(0.0, min(a1, b1) - max(a0, b0))


def history(conn: Connection, who: Principal, flt: HistoryFilter, now: datetime) -> dict[str, Any]:
    batch = None
    if flt.batch_job_id is not None:
        batch = batch_jobs.get(conn, who, flt.batch_job_id)
    if flt.site_id is not None:
        ensure_owned(conn, t.sites, flt.site_id, who, "site")
    if flt.app_id is not None:
        ensure_owned(conn, t.apps, flt.app_id, who, "app")
    now = to_naive_utc(now)
    start, end = _axis(conn, who, flt, batch, now)
    interval = nice_interval((end - start).total_seconds(), flt.buckets)
    # Buckets start on multiples of the interval (round clock times); the first one
    # holds ``start``, the last one ``end``.
    t0 = math.floor(_epoch(start) / interval) * interval
    t_end = _epoch(end)
    n = max(1, math.ceil((t_end - t0) / interval))
    sums = _bucket_sums(conn, who, flt, t0, end, interval)
    allocations = _allocations(conn, who, flt, start, end, now)
    base = sums.get(-1, (0.0,) * 6)
    jobs_level, nodes_level = base[2], base[2] + base[4]
    points = []
    total_finished = total_failed = 0
    for i in range(n):
        b0 = t0 + i * interval
        # the last bucket may reach past ``end`` (now): average over the part that was
        eff = min(b0 + interval, t_end) - b0
        until = i * interval + eff  # the averaged part's end, in seconds since t0
        finished, failed, dj, djx, dw, dwx = sums.get(i, (0.0,) * 6)
        dn, dnx = dj + dw, djx + dwx
        # sum over this bucket's changes of d * (until - x), divided by its length
        running = jobs_level + (dj * until - djx) / eff
        busy = nodes_level + (dn * until - dnx) / eff
        jobs_level += dj
        nodes_level += dn
        available = sum(nodes * _overlap(a0, a1, b0, b0 + eff) for a0, a1, nodes in allocations) / eff
        total_finished += int(finished)
        total_failed += int(failed)
        points.append(
            {
                "time": _from_epoch(b0),
                "finished": int(finished),
                "failed": int(failed),
                "running": _clean(running),
                "busy_nodes": _clean(busy),
                "available_nodes": _clean(available),
            }
        )
    return {
        "start": _from_epoch(t0),
        "end": end,
        "interval_sec": float(interval),
        "points": points,
        "finished": total_finished,
        "failed": total_failed,
    }


def _clean(value: float) -> float:
    """Rounded for the wire; float sums of +1/-1 may leave -1e-12 where 0 is meant."""
    return max(0.0, round(value, 4))
