"""Jobs: filter, count, bulk update, delete (bulk create: services/job_create.py).

Bulk requests are all-or-nothing: everything is checked before the first write, and
a transition refused later (while applying) raises inside the write transaction,
which rolls back.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import ColumnElement, Connection, delete, exists, func, select, update

from runner.models import MAX_BULK, JobFilter, JobUpdate
from runner.server import bulk, rows, transitions
from runner.server import tables as t
from runner.server.auth.principal import Principal
from runner.server.bulk import ids_in
from runner.server.db import to_naive_utc, utcnow
from runner.server.errors import Conflict, Invalid, NotFound
from runner.server.lifecycle import Advancer, load_recs
from runner.server.services import history_rollup, purge
from runner.server.services.common import count, order, too_many
from runner.states import JobState, TransitionError

S = JobState
ORDERINGS = ("id", "updated_at", "created_at", "state")
TAG_KEY_MAX = 256
TAG_VALUE_MAX = 1024


def where_clauses(flt: JobFilter, who: Principal) -> list[ColumnElement[bool]]:
    """The WHERE clauses of ``flt`` over the jobs ``who`` reaches."""
    j = t.jobs.c
    out: list[ColumnElement[bool]] = [who.owns(t.jobs)]
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


def tag_is(key: str, value: str, job_id: ColumnElement[Any] = t.jobs.c.id) -> ColumnElement[bool]:
    """Job ``job_id`` (jobs.id) has tag ``key`` = ``value``, asked of each candidate job (acquire).

    An acquire walks the free-to-run index in order and stops after the jobs it
    takes; one primary-key probe of job_tags per candidate keeps it that way, where
    ``tag_match`` would first gather every job ever given the tag (finished ones too).
    """
    jt = t.job_tags.c
    return exists().where(jt.job_id == job_id, jt.key == key, jt.value == value)


# ---------------------------------------------------------------- reading


def get(conn: Connection, who: Principal, job_id: int) -> Any:
    """The job as JSON text for an answer (an ``orjson.Fragment``)."""
    text = conn.execute(select(rows.JOBS.json(conn)).where(t.jobs.c.id == job_id, who.owns(t.jobs))).scalar()
    if text is None:
        raise NotFound(f"job {job_id} not found")
    return bulk.fragments([text])[0]


def filter(
    conn: Connection, who: Principal, flt: JobFilter, *, ordering: str | None, limit: int, offset: int
) -> dict[str, Any]:
    where = where_clauses(flt, who)
    total = count(conn, t.jobs, where)
    # The page's ids first, then JSON for those rows only: ordered by anything but the
    # key, the database would otherwise build every matching row's JSON before sorting.
    page = order(select(t.jobs.c.id).where(*where), t.jobs, ordering, ORDERINGS, "id")
    chosen = page.limit(limit).offset(offset).subquery()
    stmt = select(rows.JOBS.json(conn)).join_from(t.jobs, chosen, t.jobs.c.id == chosen.c.id)
    result = conn.execute(order(stmt, t.jobs, ordering, ORDERINGS, "id")).scalars()
    return rows.page(total, bulk.fragments(result))


def counts(conn: Connection, who: Principal, flt: JobFilter) -> list[dict[str, Any]]:
    stmt = (
        select(t.jobs.c.state, func.count())
        .where(*where_clauses(flt, who))
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


# ---------------------------------------------------------------- updating


def check_tags(tags: dict[str, str], loc: list[str | int]) -> None:
    """Tag names of 1..TAG_KEY_MAX characters, values of at most TAG_VALUE_MAX."""
    for key, value in tags.items():
        if not key or len(key) > TAG_KEY_MAX:
            raise Invalid.at([*loc, key], f"tag names are 1..{TAG_KEY_MAX} characters")
        if len(value) > TAG_VALUE_MAX:
            raise Invalid.at([*loc, key], f"tag values are at most {TAG_VALUE_MAX} characters")


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
    when not ``returning``: the launcher's hot path never reads them).

    On PostgreSQL, plain state reports (see runner/server/transitions.py) are applied
    by a few set-based statements; the other rows, every refusal, and on SQLite every
    row go through the Advancer.
    """
    if len(items) > MAX_BULK:
        raise too_many(len(items), "updates")
    ids: list[int] = []
    for i, it in enumerate(items):
        if it.id is None:
            raise Invalid.at(
                ["body", i, "id"] if loc_prefix else ["body", "id"], "each update needs the job id", "missing"
            )
        ids.append(it.id)
        if it.tags is not None:
            check_tags(it.tags, ["body", i, "tags"])
    now = utcnow()
    # the set-based path is PostgreSQL's (transitions.py says why)
    rows, at, others = ([], [], list(range(len(items)))) if bulk.is_sqlite(conn) else _plain_rows(items)
    if rows:
        slow = transitions.not_plain(conn, who.user_id, who.site_id, rows)
        if slow:
            others = sorted([*others, *(i for k in slow for i in at[k])])
            skip = set(slow)
            rows = [row for k, row in enumerate(rows) if k not in skip]
        transitions.apply(conn, rows, now)
    if others:
        _update_each(conn, who, [items[i] for i in others], now)
    if not returning:
        return []
    current = by_ids(conn, ids)
    return [current[i] for i in ids]


def _plain_rows(items: Sequence[JobUpdate]) -> tuple[list[transitions.Row], list[list[int]], list[int]]:
    """The set-based path's payload rows, one per job (its state reports in order), the
    positions in ``items`` of each row's updates, and the positions of all others (a
    job with any other field, or reports that are not plain, is the Advancer's)."""
    by_job: dict[int, list[int]] = {}
    for i, it in enumerate(items):
        by_job.setdefault(it.id, []).append(i)  # type: ignore[arg-type]
    rows: list[transitions.Row] = []
    at: list[list[int]] = []
    others: list[int] = []
    for job_id, positions in by_job.items():
        row = None
        mine = [items[i] for i in positions]
        if all(it.state is not None and it.model_fields_set.isdisjoint(_FIELDS) for it in mine):
            codes = [it.return_code for it in mine if it.return_code is not None]
            reports = [(it.state, it.state_timestamp, it.state_data) for it in mine]
            row = transitions.row(job_id, reports, codes[-1] if codes else None)  # type: ignore[arg-type]
        if row is None:
            others.extend(positions)
        else:
            rows.append(row)
            at.append(positions)
    return rows, at, sorted(others)


def _update_each(conn: Connection, who: Principal, items: Sequence[JobUpdate], now: datetime) -> None:
    """The general path: every update through the Advancer, in request order."""
    ids = [it.id for it in items if it.id is not None]
    recs = load_recs(conn, ids, owner_id=who.user_id, site_id=who.site_id)
    for job_id in ids:
        if job_id not in recs:
            raise NotFound(f"job {job_id} not found")
    adv = Advancer(conn, now)
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


def _write_fields(conn: Connection, job_id: int, values: dict[str, Any]) -> None:
    out = dict(values)
    res = out.pop("resources", None)
    if res is not None:
        out.update(res)
    out["updated_at"] = utcnow()
    change = update(t.jobs).where(t.jobs.c.id == job_id).values(**out)
    if res is not None and _reweighs(conn, job_id, res):
        with history_rollup.reweighing(conn, [job_id]):
            conn.execute(change)
    else:
        conn.execute(change)
    if "tags" in values:
        conn.execute(delete(t.job_tags).where(t.job_tags.c.job_id == job_id))
        if values["tags"]:
            conn.execute(
                t.job_tags.insert(),
                [{"job_id": job_id, "key": k, "value": v} for k, v in values["tags"].items()],
            )


def _reweighs(conn: Connection, job_id: int, res: dict[str, Any]) -> bool:
    """Whether new resources change the nodes a job's Events count in the history."""
    j = t.jobs.c
    row = conn.execute(select(j.num_nodes, j.node_packing_count).where(j.id == job_id)).one()
    return (res.get("num_nodes", row[0]), res.get("node_packing_count", row[1])) != tuple(row)


# ---------------------------------------------------------------- deleting


def delete_where(conn: Connection, who: Principal, flt: JobFilter) -> int:
    if flt.is_empty():
        raise Invalid.at(["query"], "give at least one filter (e.g. state=, tags=, site_id=) to delete jobs")
    return purge.jobs_where(conn, *where_clauses(flt, who))


def delete_one(conn: Connection, who: Principal, job_id: int) -> None:
    if purge.jobs_where(conn, t.jobs.c.id == job_id, who.owns(t.jobs)) == 0:
        raise NotFound(f"job {job_id} not found")
