"""Launcher sessions: heartbeats, atomic acquisition of runnable jobs, expiry.

Acquisition is atomic per database: PostgreSQL locks the chosen rows with
``FOR UPDATE SKIP LOCKED`` (two sessions skip each other's rows instead of waiting);
SQLite runs it inside ``BEGIN IMMEDIATE`` (one writer at a time). Either way a job
is handed to at most one session.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Connection, delete, select, update

from runner.models import AcquireSpec, SessionCreate
from runner.server import rows
from runner.server import tables as t
from runner.server.auth.principal import Principal
from runner.server.bulk import ids_in
from runner.server.db import Database, utcnow
from runner.server.errors import NotFound
from runner.server.lifecycle import Advancer, chunks, load_recs
from runner.server.services.common import count, ensure_owned
from runner.server.services.jobs import by_ids, tag_match
from runner.states import RUNNABLE, JobState

S = JobState
RUNNABLE_VALUES = sorted(s.value for s in RUNNABLE)


def get_row(conn: Connection, who: Principal, session_id: int) -> dict[str, Any]:
    row = conn.execute(
        select(*rows.SESSION_COLUMNS).where(t.sessions.c.id == session_id, who.owns(t.sessions))
    ).first()
    if row is None:
        raise NotFound(f"session {session_id} not found (it may have expired)")
    return rows.one(rows.SESSION_KEYS, row)


def create(conn: Connection, who: Principal, body: SessionCreate) -> dict[str, Any]:
    ensure_owned(conn, t.sites, body.site_id, who, "site")
    if body.batch_job_id is not None:
        ensure_owned(conn, t.batch_jobs, body.batch_job_id, who, "batch job")
    now = utcnow()
    new_id = conn.execute(
        t.sessions.insert().values(
            owner_id=who.user_id,
            site_id=body.site_id,
            batch_job_id=body.batch_job_id,
            heartbeat=now,
            expires_at=now + timedelta(seconds=body.ttl_sec),
            ttl_sec=body.ttl_sec,
        )
    ).inserted_primary_key[0]  # type: ignore[index]
    return get_row(conn, who, new_id)


def filter(
    conn: Connection, who: Principal, *, site_id: int | None, limit: int, offset: int
) -> dict[str, Any]:
    c = t.sessions.c
    where: list[ColumnElement[bool]] = [who.owns(t.sessions)]
    if site_id is not None:
        where.append(c.site_id == site_id)
    total = count(conn, t.sessions, where)
    stmt = select(*rows.SESSION_COLUMNS).where(*where).order_by(c.id).limit(limit).offset(offset)
    return rows.page(total, rows.dicts(rows.SESSION_KEYS, conn.execute(stmt)))


def heartbeat(
    conn: Connection, who: Principal, session_id: int, *, up_since: datetime | None = None
) -> dict[str, Any]:
    expire(conn, up_since=up_since)
    row = get_row(conn, who, session_id)
    now = utcnow()
    conn.execute(
        update(t.sessions)
        .where(t.sessions.c.id == session_id)
        .values(heartbeat=now, expires_at=now + timedelta(seconds=row["ttl_sec"]))
    )
    return get_row(conn, who, session_id)


def delete_session(conn: Connection, who: Principal, session_id: int) -> None:
    get_row(conn, who, session_id)
    _release(conn, [session_id], "session ended")


def expire(conn: Connection, now: datetime | None = None, *, up_since: datetime | None = None) -> int:
    """End every session whose heartbeat is older than its ttl; returns how many.

    ``up_since``: since when this server has been able to hear heartbeats (its start,
    or the end of a database outage). A session is ended only once it has had a
    whole ttl of that to beat in: launchers cannot heartbeat a server or database
    that is away, and ending their sessions for it would hand their running jobs to
    other launchers while they still run them.
    """
    now = now or utcnow()
    c = t.sessions.c
    where = [c.expires_at < now]
    if up_since is not None:
        where.append(c.ttl_sec < (now - up_since).total_seconds())
    ids = list(conn.execute(select(c.id).where(*where)).scalars())
    if ids:
        _release(conn, ids, "session expired")
    return len(ids)


def _release(conn: Connection, session_ids: list[int], reason: str) -> None:
    """RUNNING jobs of these sessions time out (and go on as the life cycle says); the
    others they hold are handed back; then the sessions are removed."""
    held: list[int] = []
    for part in chunks(session_ids):
        held.extend(conn.execute(select(t.jobs.c.id).where(t.jobs.c.session_id.in_(part))).scalars())
    adv = Advancer(conn)
    for rec in load_recs(conn, held).values():
        if rec.state is S.RUNNING:
            # lost_attempt: if the launcher went on running it, its late report may
            # reclaim the job while nobody else has taken it (services/reports.py)
            data = {"reason": f"{reason} (session {rec.session_id})", "lost_attempt": rec.attempt}
            adv.move(rec, S.RUN_TIMEOUT, None, data)
    adv.flush()
    for part in chunks(session_ids):
        conn.execute(update(t.jobs).where(t.jobs.c.session_id.in_(part)).values(session_id=None))
        conn.execute(delete(t.sessions).where(t.sessions.c.id.in_(part)))


def acquire(
    conn: Connection,
    db: Database,
    who: Principal,
    session_id: int,
    spec: AcquireSpec,
    *,
    up_since: datetime | None = None,
) -> list[Any]:
    """Hold runnable jobs for the session; returns them as JSON texts for the answer."""
    expire(conn, up_since=up_since)
    session = get_row(conn, who, session_id)
    j = t.jobs.c
    where: list[ColumnElement[bool]] = [
        j.site_id == session["site_id"],
        j.state.in_(RUNNABLE_VALUES),
        j.session_id.is_(None),
    ]
    for key, value in sorted(spec.filter_tags.items()):
        where.append(tag_match(key, value))
    if spec.app_ids is not None:
        where.append(j.app_id.in_(spec.app_ids))
    if spec.max_nodes_per_job:
        where.append(j.num_nodes <= spec.max_nodes_per_job)
    if spec.max_wall_time_min:
        where.append(j.wall_time_min <= spec.max_wall_time_min)
    if spec.serial_only:
        where.extend([j.num_nodes == 1, j.ranks_per_node == 1])
    if spec.max_aggregate_nodes is not None:
        where.append(j.num_nodes <= spec.max_aggregate_nodes * j.node_packing_count)

    chosen: list[dict[str, Any]] = []
    budget = spec.max_aggregate_nodes
    batch = spec.max_num_jobs if budget is None else max(spec.max_num_jobs * 4, 256)
    offset = 0
    while len(chosen) < spec.max_num_jobs:
        stmt = (
            select(j.id, j.num_nodes, j.node_packing_count)
            .where(*where)
            .order_by(j.num_nodes.desc(), j.id)
            .limit(batch)
            .offset(offset)
        )
        if not db.is_sqlite:
            stmt = stmt.with_for_update(skip_locked=True, of=t.jobs)
        got = [{"id": r[0], "num_nodes": r[1], "node_packing_count": r[2]} for r in conn.execute(stmt)]
        for job in got:
            if budget is not None:
                need = job["num_nodes"] / job["node_packing_count"]
                if need > budget + 1e-9:
                    continue
                budget -= need
            chosen.append(job)
            if len(chosen) >= spec.max_num_jobs or (budget is not None and budget <= 1e-9):
                break
        if len(got) < batch or budget is None or budget <= 1e-9:
            break
        offset += batch
    if not chosen:
        return []
    ids = [job["id"] for job in chosen]
    now = utcnow()
    values: dict[str, Any] = {"session_id": session_id, "updated_at": now}
    if session["batch_job_id"] is not None:
        values["batch_job_id"] = session["batch_job_id"]
    conn.execute(update(t.jobs).where(ids_in(j.id, ids)).values(**values))
    current = by_ids(conn, ids)
    return [current[i] for i in ids]
