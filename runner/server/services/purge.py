"""Deleting jobs with everything that hangs off them.

The hot tables have no foreign keys (see tables.py), so their dependants are
removed here, explicitly, before the rows they depend on.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, Connection, delete, or_, select

from runner.server import tables as t
from runner.server.bulk import ids_in


def jobs_by_ids(conn: Connection, ids: Sequence[int]) -> int:
    """Delete these jobs, their events, tags, transfer items and DAG links."""
    if not ids:
        return 0
    ids = list(ids)
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
