"""History: throughput, running jobs, busy and available nodes over time, from Events.

``GET /stats/history`` (the History view, and a batch job's utilization plot with
``batch_job_id``). The database does the heavy part, grouped (no million-row
download): per time bucket, the jobs that finished or failed, and the running-jobs and
busy-nodes *changes* (+1 / +nodes when a job enters RUNNING, -1 / -nodes when it
leaves) together with when in the bucket each change happened. From those sums the
levels follow exactly, time-averaged per bucket, in one loop over at most
MAX_BUCKETS buckets:

    average(b) = level(b start) + sum(delta * (end of b - t)) / length of b
    level(b + 1 start) = level(b start) + sum(delta)

Changes before the time axis starts fall into bucket -1: the level the axis starts at.
Available nodes come from the batch jobs' lifetimes (a few rows).

Where the sums come from: without a filter on the jobs (app, batch job, tags) and for
buckets of 10 s or more, from the 10-second cells that services/history_rollup.py
keeps (a few thousand rows a day instead of every Event), the cell that holds the
axis's end read back from its Events; otherwise from a scan of the Events, as before.
Both sum the same whole numbers
(services/history_events.py), and the averages are fractions rounded once, so the
two answer alike to the last digit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Connection, case, func, select

from runner.models import HistoryFilter
from runner.server import bulk
from runner.server import tables as t
from runner.server.auth.principal import Principal
from runner.server.db import to_naive_utc
from runner.server.errors import Invalid
from runner.server.services import batch_jobs
from runner.server.services.common import ensure_owned
from runner.server.services.history_events import US, contributions
from runner.server.services.history_rollup import CELL_SEC
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


def _epoch_us(value: datetime) -> int:
    return (value - _EPOCH) // timedelta(microseconds=1)


def _from_epoch(value: float) -> datetime:
    return _EPOCH + timedelta(seconds=value)


def rolled_up(flt: HistoryFilter) -> bool:
    """Whether the cells can answer: they are per user and site, so a filter on the jobs
    (app, batch job, tags) reads their Events instead (through the job index: few)."""
    return flt.app_id is None and flt.batch_job_id is None and not flt.tags


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


@dataclass
class _Sums:
    """One bucket's sums: jobs that finished and failed, the running-jobs changes ``dj``
    and their sum times microseconds since the bucket's start ``djx``; per packing count
    q, [busy-nodes changes times q, that times microseconds since the bucket's start]."""

    finished: int = 0
    failed: int = 0
    dj: int = 0
    djx: int = 0
    nodes: dict[int, list[int]] = field(default_factory=dict)


def _grouped(src: Any, t0: int, interval: int) -> Any:
    """``src``'s rows (base, packing and the sums of history_cells) summed per bucket of
    ``interval`` seconds from ``t0`` (-1: before it) and packing count; times in whole
    seconds (bucket start to ``base``) and microseconds (past ``base``) apart."""
    base = src.c.base
    bucket = case((base < t0, -1), else_=(base - t0) // interval).label("b")
    sec = case((base < t0, 0), else_=(base - t0) % interval)
    return select(
        bucket,
        src.c.packing,
        func.sum(src.c.finished),
        func.sum(src.c.failed),
        func.sum(src.c.dj),
        func.sum(src.c.dj * sec),
        func.sum(src.c.dj_us),
        func.sum(src.c.dn),
        func.sum(src.c.dn * sec),
        func.sum(src.c.dn_us),
    ).group_by(bucket, src.c.packing)


def _scanned(
    conn: Connection, *where: ColumnElement[bool], job_match: ColumnElement[bool] | None = None
) -> Any:
    """The counted Events that match ``where``, in the columns of history_cells."""
    c = contributions(conn, t.events, 1, *where, job_match=job_match)
    return select(
        c.c.base,
        c.c.packing,
        c.c.finished,
        c.c.failed,
        c.c.d.label("dj"),
        (c.c.d * c.c.off).label("dj_us"),
        (c.c.d * c.c.nodes).label("dn"),
        (c.c.d * c.c.nodes * c.c.off).label("dn_us"),
    ).subquery("scanned")


def _cells(who: Principal, flt: HistoryFilter, *where: ColumnElement[bool]) -> Any:
    c = t.history_cells.c
    mine = [who.owns(t.history_cells), *where]
    if flt.site_id is not None:
        mine.append(c.site_id == flt.site_id)
    return select(
        c.start_sec.label("base"), c.packing, c.finished, c.failed, c.dj, c.dj_us, c.dn, c.dn_us
    ).where(*mine)


def _bucket_rows(
    conn: Connection, who: Principal, flt: HistoryFilter, t0: int, end: datetime, interval: int
) -> list[Any]:
    """Per bucket and packing count, the sums of ``_grouped``: from the cells when they
    can answer (see ``rolled_up``; buckets of whole cells), else from the Events."""
    if not bulk.is_sqlite(conn):
        # Compiling this query to machine code (JIT) costs more than running it; and the
        # planner cannot know there are only ~buckets groups, so with the default 4 MB it
        # sorts the rows on disk instead of hashing them into a few hundred sums.
        conn.exec_driver_sql("SET LOCAL jit = off")
        conn.exec_driver_sql("SET LOCAL work_mem = '64MB'")
    e = t.events.c
    mine = [who.owns(t.events)]
    if flt.site_id is not None:
        mine.append(e.site_id == flt.site_id)
    if not (rolled_up(flt) and interval % CELL_SEC == 0):
        src = _scanned(
            conn, *mine, e.timestamp < end, *_job_filters(flt, who, e.job_id), job_match=who.owns(t.jobs)
        )
        return list(conn.execute(_grouped(src, t0, interval)))
    # whole cells before the one that holds ``end``; that one's Events before ``end``
    # are read back by id (the cells know their Events' id range)
    end_us = _epoch_us(end)
    edge = end_us // (CELL_SEC * US) * CELL_SEC
    c = t.history_cells.c
    rows = list(conn.execute(_grouped(_cells(who, flt, c.start_sec < edge).subquery("cells"), t0, interval)))
    if end_us > edge * US:
        ids = _cells(who, flt, c.start_sec == edge).with_only_columns(
            func.min(c.min_event_id), func.max(c.max_event_id)
        )
        lo, hi = conn.execute(ids).one()
        if lo is not None:
            near = [e.id >= lo, e.id <= hi, e.timestamp >= _from_epoch(edge), e.timestamp < end]
            rows += conn.execute(_grouped(_scanned(conn, *mine, *near), t0, interval))
    return rows


def _sum_rows(rows: list[Any]) -> dict[int, _Sums]:
    out: dict[int, _Sums] = {}
    for b, packing, finished, failed, dj, dj_sec, dj_us, dn, dn_sec, dn_us in rows:
        s = out.setdefault(int(b), _Sums())
        s.finished += int(finished or 0)
        s.failed += int(failed or 0)
        s.dj += int(dj or 0)
        s.djx += int(dj_sec or 0) * US + int(dj_us or 0)
        pair = s.nodes.setdefault(int(packing), [0, 0])
        pair[0] += int(dn or 0)
        pair[1] += int(dn_sec or 0) * US + int(dn_us or 0)
    return out


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
    t0 = math.floor(_epoch_us(start) / (interval * US)) * interval
    end_us = _epoch_us(end)
    n = max(1, -(-(end_us - t0 * US) // (interval * US)))
    sums = _sum_rows(_bucket_rows(conn, who, flt, t0, end, interval))
    allocations = _allocations(conn, who, flt, start, end, now)
    # Exact: the sums are integers; each average is one quotient of integers, which
    # Python rounds correctly. Busy nodes of packing count q are (nodes level_q) / q:
    # over the common multiple ``lcm`` of the counts they share one denominator.
    before = sums.get(-1, _Sums())
    jobs_level = before.dj
    nodes_level = {q: dn for q, (dn, _) in before.nodes.items()}
    lcm = math.lcm(1, *(q for s in sums.values() for q in s.nodes))
    points = []
    total_finished = total_failed = 0
    for i in range(n):
        b0 = t0 + i * interval
        # the last bucket may reach past ``end`` (now): average over the part that was
        eff = min((b0 + interval) * US, end_us) - b0 * US
        s = sums.get(i, _Sums())
        # the level at the bucket's start, plus each change times the part of the bucket after it
        running = ((jobs_level + s.dj) * eff - s.djx) / eff
        busy_num = 0
        for q in nodes_level.keys() | s.nodes.keys():
            dn, dnx = s.nodes.get(q, (0, 0))
            level = nodes_level.get(q, 0)
            busy_num += ((level + dn) * eff - dnx) * (lcm // q)
            nodes_level[q] = level + dn
        busy = busy_num / (lcm * eff)
        jobs_level += s.dj
        span = eff / US
        available = sum(nodes * _overlap(a0, a1, b0, b0 + span) for a0, a1, nodes in allocations) / span
        total_finished += s.finished
        total_failed += s.failed
        points.append(
            {
                "time": _from_epoch(b0),
                "finished": s.finished,
                "failed": s.failed,
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
