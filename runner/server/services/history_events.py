"""What one Event adds to a history, as whole numbers (the piece the scan and the rollup share).

An Event that moves a job into RUNNING adds one running job and ``num_nodes /
node_packing_count`` busy nodes; one that moves it out of RUNNING takes them away;
JOB_FINISHED and FAILED are counted. For time-averaged levels the sums also need each
change times *when* it happened. Here every quantity is an integer — the time in
microseconds since 1970, cut into a whole-second ``base`` of its time unit and the
microseconds ``off`` past it; busy nodes as ``d * num_nodes`` with the packing count
kept apart — so sums over any grouping of the same Events are the same numbers:
``GET /stats/history`` answers alike from a scan of the Events and from the rolled-up
10-second cells (services/history_rollup.py), whichever order they were added in.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Connection,
    Float,
    Integer,
    Subquery,
    case,
    cast,
    func,
    select,
)

from runner.server import bulk
from runner.server import tables as t
from runner.states import JobState

RUNNING = JobState.RUNNING.value
FINISHED = JobState.JOB_FINISHED.value
FAILED = JobState.FAILED.value
US = 1_000_000


def event_us(conn: Connection, events: Any) -> ColumnElement[int]:
    """Microseconds since 1970 of an Event's timestamp, exactly, as an integer."""
    ts = events.c.timestamp
    if bulk.is_sqlite(conn):
        # stored as "YYYY-MM-DD HH:MM:SS.ffffff"; strftime('%s') alone would round to ms first
        secs = cast(func.strftime("%s", func.substr(ts, 1, 19)), Integer)
        return secs * US + cast(func.substr(ts, 21, 6), Integer)
    # date_part is off by at most 0.12 us at today's epoch; the cast rounds to the nearest
    return cast(func.date_part("epoch", ts, type_=Float) * float(US), BigInteger)


def counted(events: Any) -> ColumnElement[bool]:
    """The Events a history counts: into or out of RUNNING, JOB_FINISHED, FAILED."""
    e = events.c
    return e.to_state.in_([RUNNING, FINISHED, FAILED]) | (e.from_state == RUNNING)


def contributions(
    conn: Connection,
    events: Any,
    unit_sec: int,
    *where: ColumnElement[bool],
    job_match: ColumnElement[bool] | None = None,
) -> Subquery:
    """Per counted Event of ``events`` (the table, or a selection with its columns):
    ``id, owner_id, site_id``, ``base`` (its time rounded down to ``unit_sec``, in
    seconds), ``off`` (microseconds past ``base``), ``packing`` and ``nodes`` (its job's
    node_packing_count and num_nodes; 1 and 1 for a job on whole nodes, which is not
    joined at all), ``d`` (+1 into RUNNING, -1 out of it, else 0), ``finished``, ``failed``.
    ``job_match``: more conditions on the joined job."""
    e, j = events.c, t.jobs.c
    unit_us = unit_sec * US
    x = event_us(conn, events)
    wide = (j.id == e.job_id) & (j.num_nodes != j.node_packing_count)
    if job_match is not None:
        wide = wide & job_match
    d = case((e.to_state == RUNNING, 1), (e.from_state == RUNNING, -1), else_=0)
    rows = (
        select(
            e.id,
            e.owner_id,
            e.site_id,
            ((x // unit_us) * unit_sec).label("base"),
            (x % unit_us).label("off"),
            func.coalesce(j.node_packing_count, 1).label("packing"),
            func.coalesce(j.num_nodes, 1).label("nodes"),
            d.label("d"),
            case((e.to_state == FINISHED, 1), else_=0).label("finished"),
            case((e.to_state == FAILED, 1), else_=0).label("failed"),
        )
        .select_from(events.outerjoin(t.jobs, wide))
        .where(counted(events), *where)
    )
    if not bulk.is_sqlite(conn):
        # OFFSET 0 keeps PostgreSQL from inlining these columns into the caller's
        # expressions, which evaluated the timestamp's conversion once per use
        # (4 times a row: 107 -> 94 ms for 100,000 Events)
        rows = rows.offset(0)
    return rows.subquery("contrib")
