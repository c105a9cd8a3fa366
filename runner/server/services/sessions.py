"""Launcher sessions: heartbeats, atomic acquisition of runnable jobs, expiry.

Acquisition is atomic per database: PostgreSQL locks the chosen rows with
``FOR UPDATE SKIP LOCKED`` (two sessions skip each other's rows instead of waiting);
SQLite runs it inside ``BEGIN IMMEDIATE`` (one writer at a time). Either way a job
is handed to at most one session.

PostgreSQL: a request that acts for a session locks its row before any job's
(``get_row``'s ``lock``), so a session cannot end between the check that it exists
and the writes that name it, and every transaction takes the session's row, then
jobs' rows: never the other way round, so none waits on another in a circle. Reports
and acquires take ``KEY SHARE`` (they run side by side), an acquire that may be
asked again ``NO KEY UPDATE`` (its retry waits for it), a session's end ``UPDATE``.
"""

from __future__ import annotations

import functools
import logging
import math
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import (
    BindParameter,
    ColumnElement,
    Connection,
    Float,
    Integer,
    Select,
    Update,
    bindparam,
    delete,
    select,
    update,
)

from runner.models import AcquireSpec, SessionCreate
from runner.server import bulk, rows
from runner.server import tables as t
from runner.server.auth.principal import Principal, owned_by
from runner.server.bulk import ids_in, ids_in_param
from runner.server.db import Database, utcnow
from runner.server.errors import NotFound
from runner.server.lifecycle import Advancer, chunks, load_recs
from runner.server.services.common import count, ensure_owned
from runner.server.services.jobs import tag_is
from runner.states import RUNNABLE, JobState

S = JobState
log = logging.getLogger("tolu.server")


#: how ``get_row`` locks the session's row on PostgreSQL (see the module): against its
#: end (``key share``), also against another such request (``no key update``), or for it.
Lock = Literal["key share", "no key update", "update"]


def get_row(conn: Connection, who: Principal, session_id: int, lock: Lock | None = None) -> dict[str, Any]:
    sqlite = bulk.is_sqlite(conn)
    stmt = _get_row(who.site_id is not None, None if sqlite else lock)
    row = conn.execute(stmt, {"id": session_id, "owner": who.user_id, "site": who.site_id}).first()
    if row is None:
        raise NotFound(f"session {session_id} not found (it may have expired)")
    return rows.one(rows.SESSION_KEYS, row)


@functools.cache
def _get_row(site_token: bool, lock: Lock | None) -> Select[Any]:
    """``get_row``'s statement, built once per kind: building a statement (and its cache
    key) costs SQLAlchemy several times what running this one does, and every request of a
    launcher reads its session. The rows ``Principal.owns`` reaches (``owned_by``)."""
    site: Any = bindparam("site") if site_token else None
    mine = owned_by(t.sessions, bindparam("owner"), site)
    stmt = select(*rows.SESSION_COLUMNS).where(t.sessions.c.id == bindparam("id"), mine)
    if lock is not None:
        stmt = stmt.with_for_update(read=lock == "key share", key_share=lock != "update")
    return stmt


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


def live_row(
    conn: Connection,
    who: Principal,
    session_id: int,
    lock: Lock | None = None,
    *,
    up_since: datetime | None = None,
) -> dict[str, Any]:
    """``get_row`` of a session that has not expired. One that has (by ``expire``'s rule,
    ``up_since``'s grace included) is not found, though the background check
    (``expire``, every ``session_check_sec``) may not have ended it yet: a late heartbeat
    or acquire cannot revive it, and a launcher's request reads its own session's row
    only, not every session's. (Ending it here would be rolled back with the 404.)"""
    row = get_row(conn, who, session_id, lock)
    now = utcnow()
    alive = (now - up_since).total_seconds() if up_since is not None else None
    if all(expiry(row["expires_at"], row["ttl_sec"], now, alive)):
        raise NotFound(f"session {session_id} not found (it has expired)")
    return row


def heartbeat(
    conn: Connection, who: Principal, session_id: int, *, up_since: datetime | None = None
) -> dict[str, Any]:
    row = live_row(conn, who, session_id, up_since=up_since)
    now = utcnow()
    until = now + timedelta(seconds=row["ttl_sec"])
    conn.execute(_BEAT, {"sid": session_id, "beat": now, "until": until})
    # the row as written (timestamps are naive UTC, as the columns hold them): not read again
    row["heartbeat"], row["expires_at"] = now, until
    return row


#: a heartbeat's write, built once (see ``_get_row``)
_BEAT = (
    update(t.sessions)
    .where(t.sessions.c.id == bindparam("sid"))
    .values(heartbeat=bindparam("beat"), expires_at=bindparam("until"))
)


def delete_session(conn: Connection, who: Principal, session_id: int) -> None:
    get_row(conn, who, session_id, lock="update")
    _release(conn, [session_id], "session ended")


def expire(conn: Connection, now: datetime | None = None, *, up_since: datetime | None = None) -> int:
    """End every session whose heartbeat is older than its ttl; returns how many.

    ``up_since``: since when this server has been able to hear heartbeats (its start,
    or the end of a database outage). A session is ended only once it has had a
    whole ttl of that to beat in: launchers cannot heartbeat a server or database
    that is away, and ending their sessions for it would hand their running jobs to
    other launchers while they still run them.

    PostgreSQL: each expired session is locked by the one server worker that ends it
    (``SKIP LOCKED``: the others pass it by), so no job times out twice.
    """
    now = now or utcnow()
    stmt = _expired(up_since is not None, bulk.is_sqlite(conn))
    alive = (now - up_since).total_seconds() if up_since is not None else None
    ids = list(conn.execute(stmt, {"now": now, "alive": alive}).scalars())
    if ids:
        _release(conn, ids, "session expired")
    return len(ids)


def expiry(expires_at: Any, ttl_sec: Any, now: Any, alive: Any) -> list[Any]:
    """The rule that ends a session, as conditions that must all hold: its heartbeat's
    ``expires_at`` is past ``now``, and (when ``alive`` is not None: the seconds this
    server has been able to hear heartbeats, see ``expire``) it has had a whole ttl of
    that to beat in. One rule for both readers: given a row's values it is a list of
    bools (``live_row``), given columns and parameters the SQL conditions (``expire``)."""
    conditions = [expires_at < now]
    if alive is not None:
        conditions.append(ttl_sec < alive)
    return conditions


@functools.cache
def _expired(since_up: bool, sqlite: bool) -> Select[Any]:
    """``expire``'s statement, built once per kind."""
    c = t.sessions.c
    # the parameters are typed as the columns they meet (tables.py)
    alive: BindParameter[Any] | None = bindparam("alive") if since_up else None
    stmt = select(c.id).where(*expiry(c.expires_at, c.ttl_sec, bindparam("now"), alive))
    if not sqlite:
        stmt = stmt.with_for_update(skip_locked=True)
    return stmt


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
) -> bytes:
    """Hold runnable jobs for the session; answers them as one JSON array (bytes).

    Without a node budget (serial mode) one statement picks, holds and returns the
    jobs: ``UPDATE ... WHERE id IN (SELECT ... LIMIT n [FOR UPDATE SKIP LOCKED])
    RETURNING`` each job's JSON text, built by the database. With a budget
    (``max_aggregate_nodes``, MPI mode) the candidates are read first and packed
    here, largest first.

    A request that repeats the session's last ``request_id`` is the retry of an
    acquire whose answer was lost: it gets that acquire's jobs again (``_answered``).
    """
    lock: Lock = "key share" if spec.request_id is None else "no key update"
    session = live_row(conn, who, session_id, lock, up_since=up_since)
    if spec.request_id is not None:
        again = _answered(conn, session_id, spec.request_id)
        if again is not None:
            return again
    one_node = spec.serial_only or spec.max_nodes_per_job == 1
    tags = sorted(spec.filter_tags.items())
    if not tags and spec.app_ids is None:
        if spec.max_aggregate_nodes is None:
            plain = list(conn.execute(*_plain_acquire(conn, session, session_id, spec, one_node)))
        else:
            plain = _budget_acquire(conn, session, session_id, spec, one_node)
        _note_answer(conn, session_id, spec, plain)
        return _array(plain)
    j = t.jobs.c
    limits = (spec.max_nodes_per_job or None, spec.max_wall_time_min or None)
    where = _queue_terms(session["site_id"], one_node, *limits, spec.serial_only)
    walk_tags = bool(tags) and one_node and spec.max_aggregate_nodes is None and db.is_sqlite  # see _tagged
    if not walk_tags:
        where.extend(tag_is(key, value) for key, value in tags)
    if spec.app_ids is not None:
        where.append(j.app_id.in_(spec.app_ids))
    chosen: ColumnElement[bool] | None
    if spec.max_aggregate_nodes is not None:
        where.append(j.num_nodes <= spec.max_aggregate_nodes * j.node_packing_count)
        page = _page(where, db.is_sqlite)
        ids = _pack(conn, page, {}, spec.max_num_jobs, spec.max_aggregate_nodes)
        chosen = ids_in(j.id, ids) if ids else None
    elif walk_tags:
        ids = _tagged(conn, where, tags, spec.max_num_jobs)
        chosen = ids_in(j.id, ids) if ids else None
    else:
        chosen = _first(where, spec.max_num_jobs, db.is_sqlite)
    held: list[Any] = []
    if chosen is not None:
        stmt = _hold(chosen, session_id, utcnow(), session["batch_job_id"], db.is_sqlite)
        held = list(conn.execute(stmt))
    _note_answer(conn, session_id, spec, held)
    return _array(held)


def _queue_terms(site: Any, one_node: bool, max_nodes: Any, wall: Any, serial_only: bool) -> list[Any]:
    """The jobs of the site free to run that fit what was asked (values, or bound
    parameters for a statement built once; None: no such limit)."""
    j = t.jobs.c
    # FREE_TO_RUN word for word: the partial index of the jobs free to run serves it
    where: list[Any] = [j.site_id == site, t.FREE_TO_RUN]
    if one_node:
        # an equality (num_nodes >= 1), which reads the index in its order. Beside "num_nodes
        # <= 1" (a serial-mode launcher asks both), SQLite took the range and sorted every job
        # free to run at each acquire: 75 ms against 3 behind 90,000 of them.
        where.append(j.num_nodes == 1)
    elif max_nodes is not None:
        where.append(j.num_nodes <= max_nodes)
    if wall is not None:
        where.append(j.wall_time_min <= wall)
    if serial_only:
        where.append(j.ranks_per_node == 1)
    return where


def _first(where: list[Any], n: Any, sqlite: bool) -> ColumnElement[bool]:
    """The first ``n`` of those in the acquisition order (PostgreSQL: locked, skipping
    rows another session is taking)."""
    j = t.jobs.c
    picked = select(j.id).where(*where).order_by(j.num_nodes.desc(), j.id).limit(n)
    if not sqlite:
        picked = picked.with_for_update(skip_locked=True, of=t.jobs)
    return j.id.in_(picked.scalar_subquery())


def _hold(chosen: ColumnElement[bool], session_id: Any, now: Any, batch: Any, sqlite: bool) -> Update:
    """Hold the chosen jobs for the session; returns each one's (num_nodes, id, JSON)."""
    j = t.jobs.c
    values: dict[str, Any] = {"session_id": session_id, "updated_at": now}
    if batch is not None:
        values["batch_job_id"] = batch
    held = (j.num_nodes, j.id, rows.JOBS.json_for(sqlite))
    return update(t.jobs).where(chosen).values(**values).returning(*held)


def _plain_acquire(
    conn: Connection, session: dict[str, Any], session_id: int, spec: AcquireSpec, one_node: bool
) -> tuple[Update, dict[str, Any]]:
    """The statement and parameters of an acquire without tags, apps or a node budget (a
    serial-mode launcher's): the general path's statement, built once per kind and run
    with bound parameters (building it cost SQLAlchemy more than running it)."""
    hold = _hold_params(session, session_id)
    kind = _queue_kind(spec, one_node)
    stmt = _plain_acquire_stmt(bulk.is_sqlite(conn), *kind, hold["batch"] is not None)
    return stmt, {**_queue_params(session, spec), **hold, "n": spec.max_num_jobs}


@functools.cache
def _plain_acquire_stmt(
    sqlite: bool, one_node: bool, max_nodes: bool, wall: bool, serial_only: bool, batch: bool
) -> Update:
    where = _bound_queue_terms(one_node, max_nodes, wall, serial_only)
    chosen = _first(where, bindparam("n", type_=Integer()), sqlite)
    return _bound_hold(chosen, batch, sqlite)


def _bound_hold(chosen: ColumnElement[bool], batch: bool, sqlite: bool) -> Update:
    """``_hold`` with bound parameters ``sess``, ``now`` and (``batch``) ``batch``: ``_hold_params``."""
    return _hold(chosen, bindparam("sess"), bindparam("now"), bindparam("batch") if batch else None, sqlite)


def _queue_kind(spec: AcquireSpec, one_node: bool) -> tuple[bool, bool, bool, bool]:
    """Which of the queue's terms an acquire built once has: one node, a node limit, a
    wall-time limit, serial only (``_bound_queue_terms``' arguments)."""
    max_nodes = bool(spec.max_nodes_per_job) and not one_node
    return one_node, max_nodes, bool(spec.max_wall_time_min), spec.serial_only


def _bound_queue_terms(one_node: bool, max_nodes: bool, wall: bool, serial_only: bool) -> list[Any]:
    """``_queue_terms`` with bound parameters ``site``, ``max_nodes`` and ``wall``."""
    return _queue_terms(
        bindparam("site"),
        one_node,
        bindparam("max_nodes") if max_nodes else None,
        bindparam("wall") if wall else None,
        serial_only,
    )


def _queue_params(session: dict[str, Any], spec: AcquireSpec) -> dict[str, Any]:
    """The values of ``_bound_queue_terms``' parameters."""
    return {"site": session["site_id"], "max_nodes": spec.max_nodes_per_job, "wall": spec.max_wall_time_min}


def _hold_params(session: dict[str, Any], session_id: int) -> dict[str, Any]:
    """The values of a hold's parameters built once (``_hold`` with ``sess``, ``now``, ``batch``)."""
    return {"sess": session_id, "now": utcnow(), "batch": session["batch_job_id"]}


def _budget_acquire(
    conn: Connection, session: dict[str, Any], session_id: int, spec: AcquireSpec, one_node: bool
) -> list[Any]:
    """An acquire with a node budget and no tags or apps (an MPI-mode launcher's): the
    general path's pages, packing and hold, their statements built once per kind."""
    assert spec.max_aggregate_nodes is not None
    sqlite = bulk.is_sqlite(conn)
    page = _budget_page(sqlite, *_queue_kind(spec, one_node))
    params = {**_queue_params(session, spec), "budget": spec.max_aggregate_nodes}
    ids = _pack(conn, page, params, spec.max_num_jobs, spec.max_aggregate_nodes)
    if not ids:
        return []
    hold = _hold_params(session, session_id)
    return list(conn.execute(_budget_hold(sqlite, hold["batch"] is not None), {**hold, "ids": ids}))


@functools.cache
def _budget_page(sqlite: bool, one_node: bool, max_nodes: bool, wall: bool, serial_only: bool) -> Select[Any]:
    j = t.jobs.c
    where = _bound_queue_terms(one_node, max_nodes, wall, serial_only)
    where.append(j.num_nodes <= bindparam("budget", type_=Float()) * j.node_packing_count)
    return _page(where, sqlite)


@functools.cache
def _budget_hold(sqlite: bool, batch: bool) -> Update:
    chosen = ids_in_param(t.jobs.c.id, "ids")
    return _bound_hold(chosen, batch, sqlite)


def _note_answer(conn: Connection, session_id: int, spec: AcquireSpec, held: list[Any]) -> None:
    """An acquire that may be asked again keeps its request id and the ids it answered."""
    if spec.request_id is not None:
        acquired = ",".join(str(row[1]) for row in held)
        conn.execute(_NOTE, {"sid": session_id, "key": spec.request_id, "ids": acquired})


#: ``_note_answer``'s write, built once
_NOTE = (
    update(t.sessions)
    .where(t.sessions.c.id == bindparam("sid"))
    .values(acquire_key=bindparam("key"), acquired=bindparam("ids"))
)


def _array(held: list[Any]) -> bytes:
    """Rows of (num_nodes, id, job JSON) as one JSON array, largest first, then oldest:
    the order they were picked in (RETURNING promises none)."""
    held.sort(key=lambda row: (-row[0], row[1]))
    return ("[" + ",".join(row[2] for row in held) + "]").encode()


def _answered(conn: Connection, session_id: int, request_id: str) -> bytes | None:
    """The answer again, when ``request_id`` names the session's last acquire; else None.

    Its jobs that the session still holds and that have not started (one that its
    owner killed meanwhile is left out): the launcher that asks again never heard of
    them. The caller holds the session's row (``no key update``), so a retry sent
    while the first request is still in the works waits for it and then finds its key.
    """
    c = t.sessions.c
    key, acquired = conn.execute(select(c.acquire_key, c.acquired).where(c.id == session_id)).one()
    if key != request_id:
        return None
    ids = [int(i) for i in acquired.split(",")] if acquired else []
    j = t.jobs.c
    held: list[Any] = []
    if ids:
        runnable = [s.value for s in RUNNABLE]
        held = list(
            conn.execute(
                select(j.num_nodes, j.id, rows.JOBS.json(conn)).where(
                    ids_in(j.id, ids), j.session_id == session_id, j.state.in_(runnable)
                )
            )
        )
    log.info(
        "session %d asked again for acquire %s, whose answer it lost: %d of its %d job(s) sent again",
        session_id, request_id, len(held), len(ids),
    )  # fmt: skip
    return _array(held)


#: rows a tag-filtered acquire reads in one step of either walk (at least; 4 per job asked)
TAG_STEP = 1000


def _tagged(
    conn: Connection, where: list[ColumnElement[bool]], tags: list[tuple[str, str]], n: int
) -> list[int]:
    """SQLite: ids of the first ``n`` single-node jobs free to run that carry every tag in
    ``tags``, oldest first (``where`` holds ``num_nodes = 1``).

    They are where two walks in id order meet: the jobs free to run (the index an
    acquire reads) and the jobs given the first tag (the tag's index, finished jobs
    too). Walking the first alone pays for every job of other tags ahead in the queue
    (a backlog nobody here takes); the second alone, for the tag's whole history. So
    the walks take turns, ``TAG_STEP`` rows at a time, each from where the other got
    to: every match up to there has been seen, and an acquire costs about twice the
    shorter walk. A queue whose first rows match ends in the first step.

    PostgreSQL keeps the one statement: its planner, with the statistics the server
    refreshes after bulk inserts, drives the tag filter from the tag's index when that
    is selective, and this walk measured slower there (docs/performance.md).
    """
    j, jt = t.jobs.c, t.job_tags.c
    key, value = tags[0]
    step = max(TAG_STEP, 4 * n)
    walks = (
        # the free-to-run index's (site, 1, id) range in its order: no sort
        lambda after: select(j.id).where(*where, j.id > after).order_by(j.num_nodes.desc(), j.id)
        .with_hint(t.jobs, "INDEXED BY ix_jobs_free_to_run", "sqlite"),
        lambda after: select(jt.job_id).where(jt.key == key, jt.value == value, jt.job_id > after)
        .order_by(jt.job_id).with_hint(t.job_tags, "INDEXED BY ix_job_tags_key_value_job_id", "sqlite"),
    )
    chosen: list[int] = []
    after = 0  # every match up to this id is in ``chosen``
    while True:
        for i, walk in enumerate(walks):
            ahead = walk(after)
            window = ahead.limit(step).subquery()
            wid = window.c[0]
            # the window's rows in their order (a co-routine), each probed: it stops at n;
            # the tag walk's rows have the first tag, and are asked the rest and the queue's terms
            found: Any = select(wid).where(*(tag_is(k, v, wid) for k, v in tags[i:]))
            if i:
                found = found.join(t.jobs, j.id == wid).where(*where)
            chosen += conn.execute(found.limit(n - len(chosen))).scalars()
            if len(chosen) >= n:
                return chosen
            last = conn.execute(ahead.offset(step - 1).limit(1)).scalar()
            if last is None:  # this walk ends within the step: no match is left
                return chosen
            after = last


def _page(where: list[Any], sqlite: bool) -> Select[Any]:
    """A page of the jobs ``where`` picks, in the acquisition order, for ``_pack`` (the
    parameters ``limit`` and ``offset``; PostgreSQL: locked, skipping rows another session
    is taking)."""
    j = t.jobs.c
    stmt = (
        select(j.id, j.num_nodes, j.node_packing_count)
        .where(*where)
        .order_by(j.num_nodes.desc(), j.id)
        .limit(bindparam("limit", type_=Integer()))
        .offset(bindparam("offset", type_=Integer()))
    )
    if not sqlite:
        stmt = stmt.with_for_update(skip_locked=True, of=t.jobs)
    return stmt


def _pack(
    conn: Connection, page: Select[Any], params: dict[str, Any], max_jobs: int, budget: float
) -> list[int]:
    """Ids of runnable jobs that fit ``budget`` nodes, largest first, read a ``page`` at a
    time (with ``params``)."""
    chosen: list[int] = []
    # A page of about what fits: a node-equivalent is one job when jobs take whole nodes
    # (twice that, for the ones that share a node); pages grow when more is needed. Reading
    # max_jobs * 4 rows each time cost an MPI-mode acquire of 100 nodes 37 us per job it held,
    # against 12 for a serial one.
    batch = min(max_jobs * 4, max(64, 2 * math.ceil(budget)))
    offset = 0
    while len(chosen) < max_jobs and budget > 1e-9:
        got = conn.execute(page, {**params, "limit": batch, "offset": offset}).all()
        for job_id, num_nodes, packing in got:
            need = num_nodes / packing
            if need > budget + 1e-9:
                continue
            budget -= need
            chosen.append(job_id)
            if len(chosen) >= max_jobs or budget <= 1e-9:
                break
        if len(got) < batch:
            break
        offset += batch
        batch = min(batch * 4, max_jobs * 4)
    return chosen
