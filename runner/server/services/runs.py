"""Published runs: publish (idempotent by run id), read, list by site, location, area, commit
and date, delete. The same isolation as jobs: every query goes through ``Principal.owns``.

Publishing checks the document against its JSON Schema and summarizes it before the
write transaction begins (a report.json can be megabytes; SQLite has one writer), then
writes the run and its areas, scenarios and figures in one transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, String, cast, delete, exists, select

from runner.models import RunKind, RunPublish
from runner.server import tables as t
from runner.server.auth.principal import Principal
from runner.server.db import Database, to_naive_utc, utcnow
from runner.server.errors import Conflict, Invalid, NotFound
from runner.server.lifecycle import chunks
from runner.server.results import documents, summaries
from runner.server.services.common import count, ensure_owned, order

R = t.runs.c
#: the columns of a Run answer (its areas and scenarios come from their tables)
RUN_KEYS = (
    "id",
    "site_id",
    "run_id",
    "kind",
    "title",
    "location",
    "machine",
    "commit",
    "load",
    "started_at",
    "duration_s",
    "ok",
    "summary",
    "digest",
    "published_at",
)
RUN_COLUMNS = [R[k] for k in RUN_KEYS]
AREA_KEYS = ("area", "outcome", "passed", "failed", "error", "skipped", "xfailed", "xpassed", "total")
SCENARIO_KEYS = ("key", "command", "name", "description", "parameters")
ORDERINGS = ("started_at", "published_at", "id")
#: a commit filter shorter than this would match too much by prefix
MIN_COMMIT_PREFIX = 4


def publish(db: Database, who: Principal, body: RunPublish) -> tuple[dict[str, Any], bool]:
    """Keep a run; ``(run, created)``. The same run id with the same document again answers
    the kept run (``created`` False); with another document it is a conflict."""
    digest = documents.digest(body.document)
    with db.read() as conn:
        ensure_owned(conn, t.sites, body.site_id, who, "site")
        known = _existing(conn, who, body)
    if known is not None:
        _same_or_conflict(known, body, digest)
        with db.read() as conn:
            return get(conn, who, known.id), False
    documents.check(body.kind, body.document)
    summary = summaries.summarize(body.kind, body.document)
    with db.write() as conn:
        ensure_owned(conn, t.sites, body.site_id, who, "site")
        known = _existing(conn, who, body)  # published meanwhile by a twin request
        if known is not None:
            _same_or_conflict(known, body, digest)
            return get(conn, who, known.id), False
        run_pk = _insert(conn, who, body, summary, digest)
        return get(conn, who, run_pk), True


def _existing(conn: Connection, who: Principal, body: RunPublish) -> Any:
    return conn.execute(
        select(R.id, R.kind, R.digest, R.published_at).where(
            R.site_id == body.site_id, R.run_id == body.run_id, who.owns(t.runs)
        )
    ).first()


def _same_or_conflict(known: Any, body: RunPublish, digest: str) -> None:
    if known.kind != body.kind or known.digest != digest:
        when = f"{known.published_at:%Y-%m-%d %H:%M} UTC"
        raise Conflict(
            f"run {body.run_id!r} of site {body.site_id} was published at {when} with another "
            f"document (run {known.id}); a different run needs a different run id"
        )


def _insert(
    conn: Connection, who: Principal, body: RunPublish, summary: summaries.Summary, digest: str
) -> int:
    run_pk: int = conn.execute(
        t.runs.insert().values(
            owner_id=who.user_id,
            site_id=body.site_id,
            run_id=body.run_id,
            kind=body.kind,
            title=summary.title,
            location=body.location,
            machine=body.machine,
            commit=body.commit,
            load=list(body.load),
            started_at=to_naive_utc(body.started_at),
            duration_s=summary.duration_s,
            ok=summary.ok,
            summary=summary.counts,
            digest=digest,
            document=body.document,
            published_at=utcnow(),
        )
    ).inserted_primary_key[0]  # type: ignore[index]
    for table, rows in (
        (t.run_areas, summary.areas),
        (t.run_scenarios, summary.scenarios),
        (t.run_figures, summary.figures),
    ):
        if rows:
            conn.execute(table.insert(), [{"run_id": run_pk, **row} for row in rows])
    return run_pk


def get(conn: Connection, who: Principal, run_pk: int) -> dict[str, Any]:
    rows = _runs(conn, select(*RUN_COLUMNS).where(R.id == run_pk, who.owns(t.runs)))
    if not rows:
        raise NotFound(f"run {run_pk} not found")
    return rows[0]


def document(conn: Connection, who: Principal, run_pk: int) -> str:
    """The document as it was published (JSON text: a large one is not parsed to be sent)."""
    text = conn.execute(
        select(cast(R.document, String)).where(R.id == run_pk, who.owns(t.runs))
    ).scalar_one_or_none()
    if text is None:
        raise NotFound(f"run {run_pk} not found")
    return str(text)


def filter(
    conn: Connection,
    who: Principal,
    *,
    site_id: int | None = None,
    location: str | None = None,
    area: str | None = None,
    commit: str | None = None,
    kind: RunKind | None = None,
    run_id: str | None = None,
    ok: bool | None = None,
    after: datetime | None = None,
    before: datetime | None = None,
    ordering: str | None = None,
    limit: int,
    offset: int,
) -> dict[str, Any]:
    where: list[Any] = [who.owns(t.runs)]
    if site_id is not None:
        where.append(R.site_id == site_id)
    if location:
        where.append(R.location == location)
    if kind:
        where.append(R.kind == kind)
    if run_id:
        where.append(R.run_id == run_id)
    if ok is not None:
        where.append(R.ok == ok)
    if commit:
        if len(commit) < MIN_COMMIT_PREFIX:
            raise Invalid.at(["query", "commit"], f"at least {MIN_COMMIT_PREFIX} characters of the commit")
        where.append(R.commit.startswith(commit, autoescape=True))
    if area:
        a = t.run_areas.c
        where.append(exists().where(a.run_id == R.id, a.area == area))
    where += date_range(after, before)
    total = count(conn, t.runs, where)
    stmt = order(select(*RUN_COLUMNS).where(*where), t.runs, ordering, ORDERINGS, "-started_at")
    return {"count": total, "results": _runs(conn, stmt.limit(limit).offset(offset))}


def delete_run(conn: Connection, who: Principal, run_pk: int) -> None:
    found = conn.execute(select(R.id).where(R.id == run_pk, who.owns(t.runs))).first()
    if found is None:
        raise NotFound(f"run {run_pk} not found")
    for table in (t.run_figures, t.run_scenarios, t.run_areas):
        conn.execute(delete(table).where(table.c.run_id == run_pk))
    conn.execute(delete(t.runs).where(R.id == run_pk))


def date_range(after: datetime | None, before: datetime | None) -> list[Any]:
    """``after <= started_at < before``, with the 422 when the range is empty."""
    if after is not None and before is not None and to_naive_utc(after) >= to_naive_utc(before):
        raise Invalid.at(["query", "after"], "must be before `before`")
    where: list[Any] = []
    if after is not None:
        where.append(R.started_at >= to_naive_utc(after))
    if before is not None:
        where.append(R.started_at < to_naive_utc(before))
    return where


def _runs(conn: Connection, stmt: Any) -> list[dict[str, Any]]:
    """Runs as answered: their columns, their areas and scenarios (one query each per page)."""
    runs = [dict(zip(RUN_KEYS, row, strict=True)) for row in conn.execute(stmt)]
    by_pk = {run["id"]: run for run in runs}
    for run in runs:
        run["areas"], run["scenarios"] = [], []
    for part in chunks(list(by_pk)):
        a, s = t.run_areas.c, t.run_scenarios.c
        for row in conn.execute(
            select(a.run_id, *(a[k] for k in AREA_KEYS)).where(a.run_id.in_(part)).order_by(a.run_id, a.area)
        ):
            by_pk[row[0]]["areas"].append(dict(zip(AREA_KEYS, row[1:], strict=True)))
        for row in conn.execute(
            select(s.run_id, *(s[k] for k in SCENARIO_KEYS))
            .where(s.run_id.in_(part))
            .order_by(s.run_id, s.name)
        ):
            by_pk[row[0]]["scenarios"].append(dict(zip(SCENARIO_KEYS, row[1:], strict=True)))
    return runs


def visible_sites(conn: Connection, who: Principal, ids: Sequence[int]) -> dict[int, str]:
    """Site id -> name, of the given sites this principal reaches."""
    out: dict[int, str] = {}
    for part in chunks(list(dict.fromkeys(ids))):
        stmt = select(t.sites.c.id, t.sites.c.name).where(t.sites.c.id.in_(part), who.owns(t.sites))
        out.update({int(row[0]): str(row[1]) for row in conn.execute(stmt)})
    return out
