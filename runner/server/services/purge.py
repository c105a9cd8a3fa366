"""Deleting jobs with everything that hangs off them.

The hot tables have no foreign keys (see tables.py), so their dependants are
removed here, explicitly, before the rows they depend on.

A job that still waits for a deleted parent (AWAITING_PARENTS, the parent not
JOB_FINISHED) could never run: it is FAILED with the reason ("parent job N was
deleted"), like the child of a failed parent, and its own waiting children after it.
Children that no longer wait (running, finished) keep going; only the link goes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, Connection, delete, or_, select

from runner.server import tables as t
from runner.server.bulk import ids_in
from runner.server.lifecycle import Advancer, load_recs
from runner.server.services import history_rollup
from runner.states import JobState

S = JobState


def jobs_by_ids(conn: Connection, ids: Sequence[int]) -> int:
    """Delete these jobs, their events, tags, transfer items and DAG links."""
    if not ids:
        return 0
    ids = list(ids)
    _fail_stranded_children(conn, ids)
    history_rollup.forget(conn, ids)
    conn.execute(delete(t.events).where(ids_in(t.events.c.job_id, ids)))
    conn.execute(delete(t.job_tags).where(ids_in(t.job_tags.c.job_id, ids)))
    conn.execute(delete(t.transfer_items).where(ids_in(t.transfer_items.c.job_id, ids)))
    conn.execute(
        delete(t.job_parents).where(
            or_(ids_in(t.job_parents.c.child_id, ids), ids_in(t.job_parents.c.parent_id, ids))
        )
    )
    result = conn.execute(delete(t.jobs).where(ids_in(t.jobs.c.id, ids)))
    return int(result.rowcount or 0)


def jobs_where(conn: Connection, *where: ColumnElement[bool] | Any) -> int:
    ids = list(conn.execute(select(t.jobs.c.id).where(*where)).scalars())
    return jobs_by_ids(conn, ids)


def _fail_stranded_children(conn: Connection, ids: Sequence[int]) -> None:
    """FAIL the waiting children that these jobs (being deleted) would strand."""
    gone = set(ids)
    p = t.jobs.alias("parent")
    stmt = (
        select(t.job_parents.c.child_id, t.job_parents.c.parent_id)
        .join(p, p.c.id == t.job_parents.c.parent_id)
        .where(ids_in(t.job_parents.c.parent_id, list(ids)), p.c.state != S.JOB_FINISHED.value)
    )
    stranded: dict[int, int] = {}
    for child, parent in conn.execute(stmt):
        if child not in gone:
            stranded[child] = min(parent, stranded.get(child, parent))
    if not stranded:
        return
    adv = Advancer(conn)
    for rec in load_recs(conn, list(stranded)).values():
        if rec.state is S.AWAITING_PARENTS:
            adv.move(rec, S.FAILED, None, {"reason": f"parent job {stranded[rec.id]} was deleted"})
    adv.flush()
