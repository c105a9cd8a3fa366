"""Events: the state history of jobs, one row per accepted transition."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Connection, select

from runner.server import bulk, rows
from runner.server import tables as t
from runner.server.auth.principal import Principal
from runner.server.db import to_naive_utc
from runner.server.services.common import count, order
from runner.states import JobState

ORDERINGS = ("id", "timestamp")


def filter(
    conn: Connection,
    who: Principal,
    *,
    job_id: list[int] | None,
    site_id: int | None,
    to_state: list[JobState] | None,
    from_state: list[JobState] | None,
    after: datetime | None,
    before: datetime | None,
    ordering: str | None,
    limit: int,
    offset: int,
) -> dict[str, Any]:
    e = t.events.c
    where: list[ColumnElement[bool]] = [who.owns(t.events)]
    if job_id:
        where.append(e.job_id.in_(job_id))
    if site_id is not None:
        where.append(e.site_id == site_id)
    if to_state:
        where.append(e.to_state.in_([s.value for s in to_state]))
    if from_state:
        where.append(e.from_state.in_([s.value for s in from_state]))
    if after is not None:
        where.append(e.timestamp >= to_naive_utc(after))
    if before is not None:
        where.append(e.timestamp < to_naive_utc(before))
    total = count(conn, t.events, where)
    stmt = order(select(rows.EVENTS.json(conn)).where(*where), t.events, ordering, ORDERINGS, "id")
    return rows.page(total, bulk.fragments(conn.execute(stmt.limit(limit).offset(offset)).scalars()))
