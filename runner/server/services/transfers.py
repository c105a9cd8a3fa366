"""Transfer items: the files a job stages in before it runs and out after it ran."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, Connection, select, update

from runner.models import MAX_BULK, TransferItemUpdate
from runner.server import rows
from runner.server import tables as t
from runner.server.auth.principal import Principal
from runner.server.db import utcnow
from runner.server.errors import Conflict, NotFound
from runner.server.lifecycle import Advancer, chunks, load_recs
from runner.server.services.common import count, too_many
from runner.states import JobState, TransitionError, allowed

S = JobState


def filter(
    conn: Connection,
    who: Principal,
    *,
    site_id: int | None,
    job_id: list[int] | None,
    state: str | None,
    direction: str | None,
    limit: int,
    offset: int,
) -> dict[str, Any]:
    c = t.transfer_items.c
    where: list[ColumnElement[bool]] = [who.owns(t.transfer_items)]
    if site_id is not None:
        where.append(c.site_id == site_id)
    if job_id:
        where.append(c.job_id.in_(job_id))
    if state is not None:
        where.append(c.state == state)
    if direction is not None:
        where.append(c.direction == direction)
    total = count(conn, t.transfer_items, where)
    stmt = select(*rows.TRANSFER_COLUMNS).where(*where).order_by(c.id).limit(limit).offset(offset)
    return rows.page(total, rows.dicts(rows.TRANSFER_KEYS, conn.execute(stmt)))


def bulk_update(
    conn: Connection, who: Principal, items: Sequence[TransferItemUpdate]
) -> list[dict[str, Any]]:
    if len(items) > MAX_BULK:
        raise too_many(len(items), "updates")
    ids = [it.id for it in items]
    found: dict[int, Any] = {}
    for part in chunks(ids):
        for row in conn.execute(
            select(t.transfer_items.c.id, t.transfer_items.c.job_id, t.transfer_items.c.direction).where(
                t.transfer_items.c.id.in_(part), who.owns(t.transfer_items)
            )
        ):
            found[row.id] = row
    for item_id in ids:
        if item_id not in found:
            raise NotFound(f"transfer item {item_id} not found")
    now = utcnow()
    touched_jobs: set[int] = set()
    errors: dict[int, str] = {}
    for it in items:
        values = it.model_dump(exclude={"id"}, exclude_unset=True)
        if it.state is not None:
            values["state"] = it.state.value
            touched_jobs.add(found[it.id].job_id)
            if it.state.value == "error":
                errors.setdefault(
                    found[it.id].job_id,
                    f"stage-{found[it.id].direction} item {it.id} failed: {it.error or 'no detail'}",
                )
        if values:
            values["updated_at"] = now
            conn.execute(update(t.transfer_items).where(t.transfer_items.c.id == it.id).values(**values))
    if touched_jobs:
        _advance_jobs(conn, sorted(touched_jobs), errors)
    out: dict[int, dict[str, Any]] = {}
    for part in chunks(ids):
        for row in conn.execute(select(*rows.TRANSFER_COLUMNS).where(t.transfer_items.c.id.in_(part))):
            out[row[0]] = rows.one(rows.TRANSFER_KEYS, row)
    return [out[i] for i in ids]


def _advance_jobs(conn: Connection, job_ids: list[int], errors: dict[int, str]) -> None:
    """An item in error fails its job; the last stage-in / stage-out item done moves it on."""
    adv = Advancer(conn)
    try:
        for rec in load_recs(conn, job_ids).values():
            adv.track(rec)
            if rec.id in errors:
                if allowed(rec.state, S.FAILED):
                    adv.move(rec, S.FAILED, None, {"reason": errors[rec.id]})
            elif rec.state in (S.READY, S.POSTPROCESSED):
                adv.settle(rec)
    except TransitionError as exc:
        raise Conflict(str(exc)) from None
    adv.flush()
