"""Creating jobs: one request holds many jobs, a whole DAG by key, all or nothing.

``bulk_create`` first sets aside the elements whose ``idempotency_key`` names a job that
exists already (services/idempotency.py), then runs four steps on the others:

1. **validate** every element against the owner's apps and jobs before anything is
   written (a 422 naming the element and the field);
2. **plan**: allocate the ids, route each job out of CREATED (its first Events are
   queued on the request's ``Advancer``) and build the rows to insert;
3. **write** the jobs, parent links, tags and transfer items, one statement per table;
4. **advance**: the ``Advancer`` writes the Events and follows parents that are
   already finished or failed down to the new jobs (runner/server/lifecycle.py).
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import JSON, Connection, DateTime, select, update

from runner.models import MAX_BULK, JobCreate, Resources
from runner.server import bulk, rows
from runner.server import tables as t
from runner.server.auth.principal import Principal
from runner.server.bulk import ids_in
from runner.server.db import Database, utcnow
from runner.server.errors import Invalid
from runner.server.lifecycle import Advancer, JobRec, chunks
from runner.server.services import app_params, idempotency
from runner.server.services.common import too_many
from runner.server.services.jobs import check_tags
from runner.states import JobState

S = JobState


def bulk_create(
    conn: Connection, db: Database, who: Principal, items: Sequence[JobCreate]
) -> list[dict[str, Any]]:
    """Create ``items`` for ``who`` inside the write transaction ``conn``; the jobs as created."""
    if len(items) > MAX_BULK:
        raise too_many(len(items), "jobs")
    if not items:
        return []
    # idempotency (services/idempotency.py): elements whose idempotency_key is known are
    # answered as the jobs are now; only the others are created.
    known = idempotency.split(conn, who.user_id, items)
    created = _create(conn, db, who, known) if known.items else []
    return idempotency.answer(known, created)


def _create(conn: Connection, db: Database, who: Principal, known: idempotency.Split) -> list[dict[str, Any]]:
    """The four steps, for the elements to create."""
    items = known.items
    try:
        checked = validate(conn, who, items)
    except Invalid as exc:
        raise idempotency.renumber(exc, known) from None
    adv = Advancer(conn, utcnow())
    planned = plan(conn, db, who.user_id, items, checked, adv)
    idempotency.stamp(planned.jobs, known.stamps)
    write(conn, db, planned)
    adv.flush()  # advance
    return _answered(planned.jobs)


_ANSWERED = frozenset(rows.JOB_KEYS)


def _answered(jobs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The written rows as the answer's jobs: the columns a Job does not show taken out
    in place (every row has the same keys; a copy of each row took ten times as long)."""
    extra = [k for k in jobs[0] if k not in _ANSWERED] if jobs else []
    for job in jobs:
        for k in extra:
            del job[k]
    return jobs


# ---------------------------------------------------------------- validate


@dataclass(frozen=True)
class Checked:
    """What validation found out, for planning."""

    #: app rows by id (only the owner's).
    apps: dict[int, Any]
    #: in-request key -> element index.
    keys: dict[str, int]
    #: state of each parent named by id (all exist and are the owner's).
    existing: dict[int, str]


def validate(conn: Connection, who: Principal, items: Sequence[JobCreate]) -> Checked:
    """Raise ``Invalid`` at the first element that cannot be created; writes nothing."""
    apps = _owned_apps(conn, who, items)
    keys: dict[str, int] = {}
    int_parents: set[int] = set()
    # what each app's check needs, read off its row once (not once per job)
    declared = {a.id: (a.name, a.parameters or {}, a.free_parameters) for a in apps.values()}
    for i, it in enumerate(items):
        app = declared.get(it.app_id)
        if app is None:
            raise Invalid.at(["body", i, "app_id"], f"app {it.app_id} not found")
        app_params.check(*app, it.parameters, ["body", i, "parameters"])
        check_tags(it.tags, ["body", i, "tags"])
        if it.key is not None:
            if it.key in keys:
                raise Invalid.at(
                    ["body", i, "key"], f"key {it.key!r} is already used by element {keys[it.key]}"
                )
            keys[it.key] = i
        int_parents.update(p for p in it.parents if isinstance(p, int))

    _check_locations(conn, who, items, apps)
    existing = _parent_states(conn, who, int_parents)
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
    return Checked(apps=apps, keys=keys, existing=existing)


def _check_locations(
    conn: Connection, who: Principal, items: Sequence[JobCreate], apps: dict[int, Any]
) -> None:
    """Stage-in/out ends name transfer locations that the job's site has (the shape of
    each end was parsed with the request: models.TransferItemCreate)."""
    with_transfers = [(i, it) for i, it in enumerate(items) if it.transfers]
    if not with_transfers:
        return
    site_ids = sorted({apps[it.app_id].site_id for _, it in with_transfers})
    s = t.sites.c
    summaries = dict(
        conn.execute(select(s.id, s.settings_summary).where(s.id.in_(site_ids), who.owns(t.sites))).all()
    )
    for i, it in with_transfers:
        summary = summaries.get(apps[it.app_id].site_id) or {}
        for j, x in enumerate(it.transfers):
            field = "source" if x.direction == "in" else "destination"
            problem = app_params.locations_problem(summary, getattr(x, field))
            if problem:
                raise Invalid.at(["body", i, "transfers", j, field], problem)


def _owned_apps(conn: Connection, who: Principal, items: Sequence[JobCreate]) -> dict[int, Any]:
    apps: dict[int, Any] = {}
    a = t.apps.c
    for part in chunks(sorted({it.app_id for it in items})):
        stmt = select(
            a.id, a.site_id, a.name, a.parameters, a.default_resources, a.hooks, a.free_parameters
        ).where(a.id.in_(part), who.owns(t.apps))
        for row in conn.execute(stmt):
            apps[row.id] = row
    return apps


def _parent_states(conn: Connection, who: Principal, ids: set[int]) -> dict[int, str]:
    states: dict[int, str] = {}
    for part in chunks(sorted(ids)):
        stmt = select(t.jobs.c.id, t.jobs.c.state).where(t.jobs.c.id.in_(part), who.owns(t.jobs))
        for pid, pstate in conn.execute(stmt):
            states[pid] = pstate
    return states


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


# ---------------------------------------------------------------- plan


@dataclass
class Planned:
    """The rows one request inserts (``jobs`` in request order)."""

    jobs: list[dict[str, Any]]
    #: ``created_at``/``updated_at`` of every new job, in the driver's stored form.
    now_db: Any
    #: existing jobs that become parents.
    new_parents: list[int]
    parents: list[tuple[int, int]] = field(default_factory=list)
    tags: list[tuple[int, str, str]] = field(default_factory=list)
    transfers: list[dict[str, Any]] = field(default_factory=list)


def plan(
    conn: Connection,
    db: Database,
    owner: int,
    items: Sequence[JobCreate],
    checked: Checked,
    adv: Advancer,
) -> Planned:
    """Ids, first states and rows of the new jobs; parents are planned before their children."""
    apps, keys = checked.apps, checked.keys
    ids = db.allocate_ids(conn, t.jobs, len(items))
    now = adv.now
    for app in apps.values():
        adv.set_hooks(app.id, app.hooks or ())
    default_resources = {a.id: Resources(**(a.default_resources or {})) for a in apps.values()}
    preprocessed_by_site = {a.id for a in apps.values() if "preprocess" in (a.hooks or ())}
    has_children = [False] * len(items)
    for it in items:
        for p in it.parents:
            if isinstance(p, str):
                has_children[keys[p]] = True

    out = Planned(jobs=[{} for _ in items], now_db=bulk.ts(conn, now), new_parents=sorted(checked.existing))
    recs: list[JobRec | None] = [None] * len(items)
    for i in _topological(items, keys) if keys else range(len(items)):
        it = items[i]
        app = apps[it.app_id]
        job_id = ids[i]
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
        if not it.parents and not it.transfers and app.id not in preprocessed_by_site:
            _straight_to_preprocessed(adv, rec, out.now_db)
        else:
            unfinished, failed_parent = _parents_status(it, keys, recs, checked.existing)
            adv.record(rec, None, S.CREATED)
            adv.start(rec, unfinished, failed_parent, fresh=True)
            rec.dirty = False  # inserted with its state, not updated
        parents = (
            list(dict.fromkeys(ids[keys[p]] if isinstance(p, str) else p for p in it.parents))
            if it.parents
            else []
        )
        res = it.resources or default_resources[app.id]
        out.jobs[i] = {
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
            "attempt": 0,
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
            out.parents.extend((job_id, p) for p in parents)
        if it.tags:
            out.tags.extend((job_id, k, v) for k, v in it.tags.items())
        if it.transfers:
            out.transfers.extend(
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
    return out


def _straight_to_preprocessed(adv: Advancer, rec: JobRec, now_db: Any) -> None:
    """The common case (no parents, no stage-in, no preprocess hook) without the general
    machinery: CREATED -> STAGED_IN -> PREPROCESSED, three Events."""
    rec.state = S.PREPROCESSED
    owner, site, job = rec.owner_id, rec.site_id, rec.id
    adv.events.extend(
        [
            (owner, site, job, None, "CREATED", now_db, "{}"),
            (owner, site, job, "CREATED", "STAGED_IN", now_db, "{}"),
            (owner, site, job, "STAGED_IN", "PREPROCESSED", now_db, "{}"),
        ]
    )


def _parents_status(
    it: JobCreate, keys: dict[str, int], recs: list[JobRec | None], existing: dict[int, str]
) -> tuple[bool, str | None]:
    """Whether a parent is unfinished, and why the job fails if a parent failed or was killed.

    In-request parents are planned first (topological order); they are never finished yet.
    """
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
    return unfinished, failed_parent


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


# ---------------------------------------------------------------- write

_JOB_INSERT = [c.name for c in t.jobs.columns]
_JOB_VALUES = operator.itemgetter(*_JOB_INSERT)
#: positions in _JOB_INSERT of the JSON columns (encoded here) and of the timestamps
#: (always "now" at creation, in the driver's stored form)
_JSON_AT = [i for i, c in enumerate(t.jobs.columns) if isinstance(c.type, JSON)]
_TIME_AT = [i for i, c in enumerate(t.jobs.columns) if isinstance(c.type, DateTime)]


def _job_tuple(row: dict[str, Any], now_db: Any) -> tuple[Any, ...]:
    # itemgetter reads the 28 values in C; only the 7 that need it are touched here
    values = list(_JOB_VALUES(row))
    dumps = bulk.dumps
    for i in _JSON_AT:
        values[i] = dumps(values[i])
    for i in _TIME_AT:
        values[i] = now_db
    return tuple(values)


def write(conn: Connection, db: Database, planned: Planned) -> None:
    """Insert the planned rows: one statement per table (the Events are the Advancer's)."""
    db.note_inserted(len(planned.jobs))
    bulk.insert_rows(conn, t.jobs, _JOB_INSERT, [_job_tuple(r, planned.now_db) for r in planned.jobs])
    if planned.new_parents:
        conn.execute(update(t.jobs).where(ids_in(t.jobs.c.id, planned.new_parents)).values(has_children=True))
    bulk.insert_rows(conn, t.job_parents, ("child_id", "parent_id"), planned.parents)
    bulk.insert_rows(conn, t.job_tags, ("job_id", "key", "value"), planned.tags)
    if planned.transfers:
        conn.execute(t.transfer_items.insert(), planned.transfers)
