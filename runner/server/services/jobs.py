"""Jobs: bulk create (a whole DAG in one request), filter, count, bulk update, delete.

Bulk requests are all-or-nothing: everything is checked before the first write, and
a transition refused later (while applying) raises inside the write transaction,
which rolls back.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import JSON, ColumnElement, Connection, DateTime, delete, func, select, update

from runner.models import MAX_BULK, JobCreate, JobFilter, JobUpdate, Resources
from runner.server import bulk, rows
from runner.server import tables as t
from runner.server.auth import Principal
from runner.server.bulk import ids_in
from runner.server.db import Database, to_naive_utc, utcnow
from runner.server.errors import Conflict, Invalid, NotFound
from runner.server.lifecycle import Advancer, JobRec, chunks, load_recs
from runner.server.services import purge
from runner.server.services.common import count, order
from runner.states import JobState, TransitionError

S = JobState
ORDERINGS = ("id", "updated_at", "created_at", "state")
TAG_KEY_MAX = 256
TAG_VALUE_MAX = 1024


def where_clauses(flt: JobFilter, owner_id: int) -> list[ColumnElement[bool]]:
    """The WHERE clauses of ``flt`` over the jobs of ``owner_id``."""
    j = t.jobs.c
    out: list[ColumnElement[bool]] = [j.owner_id == owner_id]
    if flt.id:
        out.append(j.id.in_(flt.id))
    if flt.state:
        states = sorted({s.value for s in flt.state})
        out.append(j.state == states[0] if len(states) == 1 else j.state.in_(states))
    for key, value in sorted(flt.tag_dict().items()):
        out.append(tag_match(key, value))
    if flt.site_id is not None:
        out.append(j.site_id == flt.site_id)
    if flt.app_id is not None:
        out.append(j.app_id == flt.app_id)
    if flt.parent_id is not None:
        out.append(
            bulk.in_select(
                j.id, select(t.job_parents.c.child_id).where(t.job_parents.c.parent_id == flt.parent_id)
            )
        )
    if flt.session_id is not None:
        out.append(j.session_id == flt.session_id)
    if flt.batch_job_id is not None:
        out.append(j.batch_job_id == flt.batch_job_id)
    bounds: list[tuple[Any, bool, datetime | None]] = [
        (j.created_at, True, flt.created_after),
        (j.created_at, False, flt.created_before),
        (j.updated_at, True, flt.updated_after),
        (j.updated_at, False, flt.updated_before),
    ]
    for col, lower, when in bounds:
        if when is not None:
            v = to_naive_utc(when)
            out.append(col >= v if lower else col < v)
    return out


def tag_match(key: str, value: str) -> ColumnElement[bool]:
    """Job has tag ``key`` = ``value``.

    The matching ids come from the (key, value, job_id) index once, then the jobs
    are probed by id (see bulk.InSelect): a 1% tag out of 100,000 jobs touches
    1,000 rows, whatever the planner's statistics say.
    """
    return bulk.in_select(
        t.jobs.c.id, select(t.job_tags.c.job_id).where(t.job_tags.c.key == key, t.job_tags.c.value == value)
    )


# ---------------------------------------------------------------- reading


def get(conn: Connection, who: Principal, job_id: int) -> Any:
    """The job as JSON text for an answer (an ``orjson.Fragment``)."""
    text = conn.execute(
        select(rows.JOBS.json(conn)).where(t.jobs.c.id == job_id, t.jobs.c.owner_id == who.user_id)
    ).scalar()
    if text is None:
        raise NotFound(f"job {job_id} not found")
    return bulk.fragments([text])[0]


def filter(
    conn: Connection, who: Principal, flt: JobFilter, *, ordering: str | None, limit: int, offset: int
) -> dict[str, Any]:
    where = where_clauses(flt, who.user_id)
    total = count(conn, t.jobs, where)
    stmt = order(select(rows.JOBS.json(conn)).where(*where), t.jobs, ordering, ORDERINGS, "id")
    result = conn.execute(stmt.limit(limit).offset(offset)).scalars()
    return rows.page(total, bulk.fragments(result))


def counts(conn: Connection, who: Principal, flt: JobFilter) -> list[dict[str, Any]]:
    stmt = (
        select(t.jobs.c.state, func.count())
        .where(*where_clauses(flt, who.user_id))
        .group_by(t.jobs.c.state)
        .order_by(t.jobs.c.state)
    )
    return [{"state": state, "count": n} for state, n in conn.execute(stmt)]


def by_ids(conn: Connection, ids: Sequence[int]) -> dict[int, Any]:
    """job id -> the job as JSON text for an answer (``orjson.Fragment``)."""
    if not ids:
        return {}
    stmt = select(t.jobs.c.id, rows.JOBS.json(conn)).where(ids_in(t.jobs.c.id, list(dict.fromkeys(ids))))
    return {job_id: orjson.Fragment(text) for job_id, text in conn.execute(stmt)}


# ---------------------------------------------------------------- creating


def _too_many(n: int, what: str = "jobs") -> Invalid:
    return Invalid.at(["body"], f"at most {MAX_BULK} {what} per request, got {n}; split it", "too_long")


def _check_tags(tags: dict[str, str], loc: list[str | int]) -> None:
    for key, value in tags.items():
        if not key or len(key) > TAG_KEY_MAX:
            raise Invalid.at([*loc, key], f"tag names are 1..{TAG_KEY_MAX} characters")
        if len(value) > TAG_VALUE_MAX:
            raise Invalid.at([*loc, key], f"tag values are at most {TAG_VALUE_MAX} characters")


def _find_cycle(items: Sequence[JobCreate], keys: dict[str, int]) -> tuple[int, list[str]] | None:
    """Return (element index, key path) of one cycle among in-request parents, if any."""
    n = len(items)
    key_parents = [[keys[p] for p in it.parents if isinstance(p, str)] for it in items]
    indegree = [len(ps) for ps in key_parents]
    children: list[list[int]] = [[] for _ in range(n)]
    for child, ps in enumerate(key_parents):
        for p in ps:
            children[p].append(child)
    ready = [i for i in range(n) if indegree[i] == 0]
    seen = 0
    while ready:
        i = ready.pop()
        seen += 1
        for c in children[i]:
            indegree[c] -= 1
            if indegree[c] == 0:
                ready.append(c)
    if seen == n:
        return None
    # Walk parents from a node left in the cycle until one repeats.
    node = next(i for i in range(n) if indegree[i] > 0)
    path: list[int] = []
    while node not in path:
        path.append(node)
        node = next(p for p in key_parents[node] if indegree[p] > 0)
    cycle = [*path[path.index(node) :], node]
    return cycle[0], [str(items[i].key) for i in cycle]


def _topological(items: Sequence[JobCreate], keys: dict[str, int]) -> list[int]:
    """Element indices with in-request parents before their children (no cycles here)."""
    order_: list[int] = []
    state = [0] * len(items)
    for start in range(len(items)):
        if state[start]:
            continue
        stack: list[tuple[int, bool]] = [(start, False)]
        while stack:
            i, done = stack.pop()
            if done:
                order_.append(i)
                continue
            if state[i]:
                continue
            state[i] = 1
            stack.append((i, True))
            for p in items[i].parents:
                if isinstance(p, str) and not state[keys[p]]:
                    stack.append((keys[p], False))
    return order_


_JOB_INSERT = [c.name for c in t.jobs.columns]
#: per column: 1 = JSON (encode), 2 = timestamp (always "now" at creation), 0 = as is.
_JOB_PLAN = [
    (c.name, 1 if isinstance(c.type, JSON) else 2 if isinstance(c.type, DateTime) else 0)
    for c in t.jobs.columns
]


def _job_tuple(row: dict[str, Any], now_db: Any) -> tuple[Any, ...]:
    dumps = bulk.dumps
    return tuple(dumps(row[n]) if k == 1 else now_db if k == 2 else row[n] for n, k in _JOB_PLAN)


def bulk_create(
    conn: Connection, db: Database, who: Principal, items: Sequence[JobCreate]
) -> list[dict[str, Any]]:
    if len(items) > MAX_BULK:
        raise _too_many(len(items))
    if not items:
        return []
    owner = who.user_id

    app_ids = sorted({it.app_id for it in items})
    apps: dict[int, Any] = {}
    for part in chunks(app_ids):
        for row in conn.execute(
            select(
                t.apps.c.id,
                t.apps.c.site_id,
                t.apps.c.name,
                t.apps.c.parameters,
                t.apps.c.default_resources,
                t.apps.c.hooks,
            ).where(t.apps.c.id.in_(part), t.apps.c.owner_id == owner)
        ):
            apps[row.id] = row

    keys: dict[str, int] = {}
    int_parents: set[int] = set()
    for i, it in enumerate(items):
        app = apps.get(it.app_id)
        if app is None:
            raise Invalid.at(["body", i, "app_id"], f"app {it.app_id} not found")
        missing = [k for k, v in (app.parameters or {}).items() if v is None and k not in it.parameters]
        if missing:
            raise Invalid.at(
                ["body", i, "parameters"],
                f"app {app.name!r} needs parameter(s) {', '.join(sorted(missing))}",
                "missing",
            )
        _check_tags(it.tags, ["body", i, "tags"])
        if it.key is not None:
            if it.key in keys:
                raise Invalid.at(
                    ["body", i, "key"], f"key {it.key!r} is already used by element {keys[it.key]}"
                )
            keys[it.key] = i
        int_parents.update(p for p in it.parents if isinstance(p, int))

    existing: dict[int, str] = {}
    for part in chunks(sorted(int_parents)):
        for pid, pstate in conn.execute(
            select(t.jobs.c.id, t.jobs.c.state).where(t.jobs.c.id.in_(part), t.jobs.c.owner_id == owner)
        ):
            existing[pid] = pstate
    for i, it in enumerate(items):
        for j, p in enumerate(it.parents):
            if isinstance(p, str):
                if p not in keys:
                    raise Invalid.at(["body", i, "parents", j], f"no job with key {p!r} in this request")
                if keys[p] == i:
                    raise Invalid.at(["body", i, "parents", j], f"job {p!r} cannot be its own parent")
            elif p not in existing:
                raise Invalid.at(["body", i, "parents", j], f"parent job {p} not found")
    if keys:
        cycle = _find_cycle(items, keys)
        if cycle is not None:
            at, path = cycle
            raise Invalid.at(["body", at, "parents"], f"dependency cycle: {' -> '.join(path)}")

    ids = db.allocate_ids(conn, t.jobs, len(items))
    now = utcnow()
    adv = Advancer(conn, now)
    for app in apps.values():
        adv.set_hooks(app.id, app.hooks or ())

    job_rows: list[dict[str, Any]] = [{} for _ in items]
    recs: list[JobRec | None] = [None] * len(items)
    parent_rows: list[tuple[int, int]] = []
    tag_rows: list[tuple[int, str, str]] = []
    transfer_rows: list[dict[str, Any]] = []
    has_children = [False] * len(items)
    now_db = bulk.ts(conn, now)
    default_resources = {a.id: Resources(**(a.default_resources or {})) for a in apps.values()}
    preprocessed_by_site = {a.id for a in apps.values() if "preprocess" in (a.hooks or ())}
    for it in items:
        for p in it.parents:
            if isinstance(p, str):
                has_children[keys[p]] = True

    for i in _topological(items, keys) if keys else range(len(items)):
        it = items[i]
        app = apps[it.app_id]
        job_id = ids[i]
        res = it.resources or default_resources[app.id]
        parents = (
            list(dict.fromkeys(ids[keys[p]] if isinstance(p, str) else p for p in it.parents))
            if it.parents
            else []
        )
        n_in = sum(1 for x in it.transfers if x.direction == "in") if it.transfers else 0
        rec = JobRec(
            id=job_id,
            owner_id=owner,
            site_id=app.site_id,
            app_id=app.id,
            state=S.CREATED,
            retry_count=0,
            retry_limit=it.retry_limit,
            return_code=None,
            session_id=None,
            has_children=has_children[i],
            n_stage_in=n_in,
            n_stage_out=len(it.transfers) - n_in,
        )
        recs[i] = rec
        failed_parent: str | None = None
        unfinished = False
        for p in it.parents:
            if isinstance(p, str):
                prec = recs[keys[p]]
                assert prec is not None
                if prec.state in (S.FAILED, S.KILLED):
                    failed_parent = failed_parent or f"parent job {prec.id} is {prec.state.value}"
                unfinished = True
            else:
                pstate = existing[p]
                if pstate in (S.FAILED.value, S.KILLED.value):
                    failed_parent = failed_parent or f"parent job {p} is {pstate}"
                elif pstate != S.JOB_FINISHED.value:
                    unfinished = True
        if not it.parents and not it.transfers and app.id not in preprocessed_by_site:
            # The common case, without the general machinery: CREATED -> STAGED_IN -> PREPROCESSED.
            rec.state = S.PREPROCESSED
            adv.events.extend(
                [
                    (owner, app.site_id, job_id, None, "CREATED", now_db, "{}"),
                    (owner, app.site_id, job_id, "CREATED", "STAGED_IN", now_db, "{}"),
                    (owner, app.site_id, job_id, "STAGED_IN", "PREPROCESSED", now_db, "{}"),
                ]
            )
        else:
            adv.record(rec, None, S.CREATED)
            adv.start(rec, unfinished, failed_parent, fresh=True)
            rec.dirty = False
        job_rows[i] = {
            "id": job_id,
            "owner_id": owner,
            "site_id": app.site_id,
            "app_id": app.id,
            "state": rec.state.value,
            "parents": parents,
            "parameters": it.parameters,
            "serialized_args": it.serialized_args,
            "tags": it.tags,
            "environment": it.environment,
            "workdir": it.workdir or f"{app.name}/{job_id}",
            "num_nodes": res.num_nodes,
            "ranks_per_node": res.ranks_per_node,
            "threads_per_rank": res.threads_per_rank,
            "gpus_per_rank": res.gpus_per_rank,
            "node_packing_count": res.node_packing_count,
            "wall_time_min": res.wall_time_min,
            "return_code": None,
            "retry_count": 0,
            "retry_limit": it.retry_limit,
            "data": it.data,
            "batch_job_id": None,
            "session_id": None,
            "has_children": has_children[i],
            "n_stage_in": n_in,
            "n_stage_out": len(it.transfers) - n_in,
            "created_at": now,
            "updated_at": now,
        }
        if parents:
            parent_rows.extend((job_id, p) for p in parents)
        if it.tags:
            tag_rows.extend((job_id, k, v) for k, v in it.tags.items())
        if it.transfers:
            transfer_rows.extend(
                {
                    "owner_id": owner,
                    "site_id": app.site_id,
                    "job_id": job_id,
                    "direction": x.direction.value,
                    "source": x.source,
                    "destination": x.destination,
                    "recursive": x.recursive,
                    "state": "pending",
                    "task_id": None,
                    "error": None,
                    "updated_at": now,
                }
                for x in it.transfers
            )

    db.note_inserted(len(job_rows))
    bulk.insert_rows(conn, t.jobs, _JOB_INSERT, [_job_tuple(r, now_db) for r in job_rows])
    if int_parents:
        conn.execute(update(t.jobs).where(ids_in(t.jobs.c.id, sorted(int_parents))).values(has_children=True))
    bulk.insert_rows(conn, t.job_parents, ("child_id", "parent_id"), parent_rows)
    bulk.insert_rows(conn, t.job_tags, ("job_id", "key", "value"), tag_rows)
    if transfer_rows:
        conn.execute(t.transfer_items.insert(), transfer_rows)
    adv.flush()
    return [{k: r[k] for k in rows.JOB_KEYS} for r in job_rows]


# ---------------------------------------------------------------- updating

_FIELDS = ("tags", "parameters", "data", "retry_limit", "resources")


def bulk_update(
    conn: Connection,
    who: Principal,
    items: Sequence[JobUpdate],
    *,
    loc_prefix: bool = True,
    returning: bool = True,
) -> list[Any]:
    """Apply the updates all-or-nothing; answer the jobs as they are now (``[]``
    when not ``returning``: the launcher's hot path never reads them)."""
    if len(items) > MAX_BULK:
        raise _too_many(len(items), "updates")
    ids: list[int] = []
    for i, it in enumerate(items):
        if it.id is None:
            raise Invalid.at(
                ["body", i, "id"] if loc_prefix else ["body", "id"], "each update needs the job id", "missing"
            )
        if it.tags is not None:
            _check_tags(it.tags, ["body", i, "tags"])
        ids.append(it.id)
    recs = load_recs(conn, ids, owner_id=who.user_id)
    for job_id in ids:
        if job_id not in recs:
            raise NotFound(f"job {job_id} not found")
    adv = Advancer(conn)
    field_updates: dict[int, dict[str, Any]] = {}
    try:
        for it in items:
            assert it.id is not None
            rec = adv.track(recs[it.id])
            values = (
                it.model_dump(include=set(_FIELDS), exclude_unset=True, exclude_none=True)
                if not it.model_fields_set.isdisjoint(_FIELDS)
                else None
            )
            if values:
                if "retry_limit" in values:
                    rec.retry_limit = values["retry_limit"]
                field_updates.setdefault(it.id, {}).update(values)
            if it.return_code is not None:
                rec.return_code = it.return_code
                rec.dirty = True
            if it.state is not None and it.state is not rec.state:
                ts = to_naive_utc(it.state_timestamp) if it.state_timestamp else None
                adv.move(rec, it.state, ts, it.state_data or None)
    except TransitionError as exc:
        raise Conflict(str(exc)) from None
    for job_id, values in field_updates.items():
        _write_fields(conn, job_id, values)
    adv.flush()
    if not returning:
        return []
    current = by_ids(conn, ids)
    return [current[i] for i in ids]


def _write_fields(conn: Connection, job_id: int, values: dict[str, Any]) -> None:
    out = dict(values)
    res = out.pop("resources", None)
    if res is not None:
        out.update(res)
    out["updated_at"] = utcnow()
    conn.execute(update(t.jobs).where(t.jobs.c.id == job_id).values(**out))
    if "tags" in values:
        conn.execute(delete(t.job_tags).where(t.job_tags.c.job_id == job_id))
        if values["tags"]:
            conn.execute(
                t.job_tags.insert(),
                [{"job_id": job_id, "key": k, "value": v} for k, v in values["tags"].items()],
            )


# ---------------------------------------------------------------- deleting


def delete_where(conn: Connection, who: Principal, flt: JobFilter) -> int:
    if flt.is_empty():
        raise Invalid.at(["query"], "give at least one filter (e.g. state=, tags=, site_id=) to delete jobs")
    return purge.jobs_where(conn, *where_clauses(flt, who.user_id))


def delete_one(conn: Connection, who: Principal, job_id: int) -> None:
    if purge.jobs_where(conn, t.jobs.c.id == job_id, t.jobs.c.owner_id == who.user_id) == 0:
        raise NotFound(f"job {job_id} not found")
