"""Batch jobs: allocations the site agent asks the facility scheduler for."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, Connection, select, update

from runner.models import MAX_BULK, BatchJobCreate, BatchJobUpdate
from runner.server import rows
from runner.server import tables as t
from runner.server.auth.principal import Principal
from runner.server.db import to_naive_utc, utcnow
from runner.server.errors import Conflict, Invalid, NotFound
from runner.server.lifecycle import chunks
from runner.server.services.common import count, ensure_owned, too_many
from runner.states import BATCH_FINAL, BATCH_TRANSITIONS, BatchJobState

B = BatchJobState


def _load(conn: Connection, who: Principal, ids: Sequence[int]) -> dict[int, dict[str, Any]]:
    out: dict[int, dict[str, Any]] = {}
    for part in chunks(list(dict.fromkeys(ids))):
        stmt = select(*rows.BATCH_JOB_COLUMNS).where(t.batch_jobs.c.id.in_(part), who.owns(t.batch_jobs))
        for row in conn.execute(stmt):
            out[row[0]] = rows.one(rows.BATCH_JOB_KEYS, row)
    return out


def get(conn: Connection, who: Principal, batch_job_id: int) -> dict[str, Any]:
    found = _load(conn, who, [batch_job_id])
    if batch_job_id not in found:
        raise NotFound(f"batch job {batch_job_id} not found")
    return found[batch_job_id]


def create(conn: Connection, who: Principal, body: BatchJobCreate) -> dict[str, Any]:
    ensure_owned(conn, t.sites, body.site_id, who, "site")
    now = utcnow()
    new_id = conn.execute(
        t.batch_jobs.insert().values(
            owner_id=who.user_id,
            scheduler_id=None,
            state=B.PENDING_SUBMISSION.value,
            status_info={},
            start_time=None,
            end_time=None,
            created_at=now,
            updated_at=now,
            **body.model_dump(mode="json"),
        )
    ).inserted_primary_key[0]  # type: ignore[index]
    return get(conn, who, new_id)


def filter(
    conn: Connection,
    who: Principal,
    *,
    site_id: int | None,
    state: list[BatchJobState] | None,
    limit: int,
    offset: int,
) -> dict[str, Any]:
    c = t.batch_jobs.c
    where: list[ColumnElement[bool]] = [who.owns(t.batch_jobs)]
    if site_id is not None:
        where.append(c.site_id == site_id)
    if state:
        where.append(c.state.in_([s.value for s in state]))
    total = count(conn, t.batch_jobs, where)
    stmt = select(*rows.BATCH_JOB_COLUMNS).where(*where).order_by(c.id).limit(limit).offset(offset)
    return rows.page(total, rows.dicts(rows.BATCH_JOB_KEYS, conn.execute(stmt)))


def _check(batch_job_id: int, current: BatchJobState, target: BatchJobState) -> None:
    if target is current:
        return
    if target not in BATCH_TRANSITIONS[current]:
        nxt = ", ".join(sorted(s.value for s in BATCH_TRANSITIONS[current])) or "none"
        raise Conflict(
            f"batch job {batch_job_id}: cannot go from {current.value} to {target.value} "
            f"(allowed from {current.value}: {nxt})"
        )


def bulk_update(
    conn: Connection, who: Principal, items: Sequence[BatchJobUpdate], *, single: bool = False
) -> list[dict[str, Any]]:
    if len(items) > MAX_BULK:
        raise too_many(len(items), "updates")
    ids: list[int] = []
    for i, it in enumerate(items):
        if it.id is None:
            raise Invalid.at(
                ["body", "id"] if single else ["body", i, "id"],
                "each update needs the batch job id",
                "missing",
            )
        ids.append(it.id)
    current = _load(conn, who, ids)
    for bid in ids:
        if bid not in current:
            raise NotFound(f"batch job {bid} not found")
    now = utcnow()
    for it in items:
        assert it.id is not None
        row = current[it.id]
        values = it.model_dump(exclude={"id"}, exclude_unset=True, exclude_none=True)
        if it.state is not None:
            _check(it.id, B(row["state"]), it.state)
            values["state"] = it.state.value
            row["state"] = it.state.value
        for key in ("start_time", "end_time"):
            if key in values:
                values[key] = to_naive_utc(values[key])
        if values:
            values["updated_at"] = now
            conn.execute(update(t.batch_jobs).where(t.batch_jobs.c.id == it.id).values(**values))
    fresh = _load(conn, who, ids)
    return [fresh[i] for i in ids]


def request_deletion(conn: Connection, who: Principal, batch_job_id: int) -> dict[str, Any]:
    row = get(conn, who, batch_job_id)
    state = B(row["state"])
    if state in BATCH_FINAL or state is B.PENDING_DELETION:
        return row
    return bulk_update(conn, who, [BatchJobUpdate(id=batch_job_id, state=B.PENDING_DELETION)])[0]
