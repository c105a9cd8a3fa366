"""A bulk update's plain rows as a few set-based statements (PostgreSQL's ``PATCH /jobs``).

Most rows a launcher reports are *plain*: a job of an app without hooks, with no
transfer items and no children, going RUNNING, or RUN_DONE (which the server
carries on to JOB_FINISHED). Their outcome depends on nothing but the two states,
so a thousand of them need no Python per job — three statements apply them:

1. **check** (it also locks the rows, in id order): the rows that are
   *not* plain — a job that is missing or not the caller's, a transition the table
   refuses, a job whose app has hooks or that has transfer items or children;
2. **events**: ``INSERT INTO events ... SELECT`` the reported transition and every
   automatic step after it, from the payload joined with the jobs and the steps;
3. **jobs**: one ``UPDATE ... FROM`` to the final state.

Every other row goes through ``lifecycle.Advancer`` afterwards, in the same
transaction (services/jobs.py): 404s and 409s come from there, and a refused row
rolls back the whole request.

On PostgreSQL only: a statement per step instead of a round trip per row is its win.
SQLite runs in the server's process, where binding the Advancer's rows costs less
than reading a JSON payload with ``json_extract`` once per column per row, so there
every row takes the Advancer (docs/performance.md, "PATCH /jobs on SQLite").

Nothing here is a second copy of the life cycle. ``ROUTES`` is made once by running
the ``Advancer`` itself on a plain job for every transition that runner.states
allows, keeping those whose outcome depends on nothing it had to look up (hooks and
transfer counts, which the check covers, aside): a step that reads a retry count or
records a reason is not plain.

The payload is one JSON text, a row per update (``row``): the job id, the target
state, the reported timestamp, return code and Event data, then what the route
says — the Events as [from, to] pairs, the final state, whether the session is
kept. The database reads it with ``json_array_elements``; Python only looks the
route up per row.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import Connection, text

from runner.server.lifecycle import Advancer, JobRec
from runner.states import FINAL, TRANSITIONS, JobState

S = JobState

#: One payload row (see ``row``).
Row = list[Any]


@dataclass(frozen=True)
class Route:
    """What the Advancer does with a plain job asked to go ``source`` -> ``target``."""

    source: JobState
    target: JobState
    #: the automatic steps after ``target`` (from, to), in order.
    steps: tuple[tuple[JobState, JobState], ...]
    final: JobState
    #: the job keeps its session (only while RUNNING).
    keeps_session: bool
    #: the steps asked the app's hooks / counted stage-in / stage-out items.
    asks_hooks: bool
    counts_in: bool
    counts_out: bool
    #: the final state is one that children wait for (JOB_FINISHED, FAILED, KILLED).
    ends: bool


class _NotPlain(Exception):
    """The Advancer looked at something beyond the two states (a retry count, ...)."""


class _NoDatabase:
    """Stands in for the connection while probing: the probe reads and writes nothing."""

    class dialect:  # mimics Connection.dialect
        name = "none"

    def execute(self, *_args: Any, **_kw: Any) -> Any:
        raise AssertionError("the route probe must not touch a database")


class _Probe(Advancer):
    """An Advancer on a plain job (no hooks, no transfer items) that notes what it asked."""

    def __init__(self) -> None:
        super().__init__(_NoDatabase(), datetime(2000, 1, 1))  # type: ignore[arg-type]
        self.asked_hooks = False
        self.counted: set[str] = set()

    def hooks(self, app_id: int) -> frozenset[str]:
        self.asked_hooks = True
        return frozenset()

    def _pending_transfers(self, rec: JobRec, direction: str) -> int:
        self.counted.add(direction)
        return 0

    def _retry(self, rec: JobRec) -> tuple[JobState, dict[str, Any]]:
        raise _NotPlain


def _plain_job(state: JobState) -> JobRec:
    return JobRec(
        id=1,
        owner_id=1,
        site_id=1,
        app_id=1,
        state=state,
        retry_count=0,
        retry_limit=0,
        return_code=None,
        session_id=1,
        has_children=True,
        n_stage_in=0,
        n_stage_out=0,
    )


def probe(source: JobState, target: JobState) -> Route | None:
    """The route of ``source -> target`` for a plain job, or None when it is not plain."""
    adv = _Probe()
    rec = _plain_job(source)
    # attempt: every move to RESTART_READY starts one (lifecycle.Advancer), a rule the
    # set-based statement does not carry, so those routes take the Advancer's path
    before = (rec.retry_count, rec.retry_limit, rec.return_code, rec.attempt)
    try:
        adv.move(rec, target)
    except _NotPlain:
        return None
    # events[i] = (owner, site, job, from, to, ts, data): a step that records data
    # (a reason, a retry count) depends on more than the states.
    after = (rec.retry_count, rec.retry_limit, rec.return_code, rec.attempt)
    if any(ev[6] != "{}" for ev in adv.events) or after != before:
        return None
    moves = [(S(ev[3]), S(ev[4])) for ev in adv.events]
    return Route(
        source=source,
        target=target,
        steps=tuple(moves[1:]),
        final=rec.state,
        keeps_session=rec.session_id is not None,
        asks_hooks=adv.asked_hooks,
        counts_in="in" in adv.counted,
        counts_out="out" in adv.counted,
        ends=rec.state in FINAL,
    )


def _routes() -> dict[tuple[JobState, JobState], Route]:
    out: dict[tuple[JobState, JobState], Route] = {}
    for source, targets in TRANSITIONS.items():
        for target in targets:
            route = probe(source, target)
            if route is not None:
                out[source, target] = route
    # the automatic steps start from the target, so they cannot depend on the source
    by_target: dict[JobState, Route] = {}
    for route in out.values():
        first = by_target.setdefault(route.target, route)
        if (first.steps, first.final, first.keeps_session) != (route.steps, route.final, route.keeps_session):
            raise AssertionError(f"automatic steps after {route.target} depend on the state before it")
    return out


ROUTES = _routes()
TARGETS: dict[JobState, Route] = {route.target: route for route in ROUTES.values()}


#: Each Event of a row: [from, to, timestamp, data]; ``from`` None is the job's state
#: (read by the database), timestamp None is now.
Step = list[Any]
_NO_DATA: dict[str, Any] = {}


def _auto(route: Route) -> list[Step]:
    return [[a.value, b.value, None, _NO_DATA] for a, b in route.steps]


@dataclass(frozen=True)
class _Move:
    """One reported move of a plain sequence: its Event's ``from`` and ``to``, then the
    automatic steps it leads to (shared by every row: orjson writes them out)."""

    source: str | None
    target: str
    auto: list[Step]


@dataclass(frozen=True)
class Plan:
    """What a sequence of reported targets does to a plain job (one payload row)."""

    first: JobState
    #: per report: its move, or None when the job is already there (nothing happens)
    moves: tuple[_Move | None, ...]
    final: JobState
    keeps_session: bool
    asks_hooks: bool
    counts_in: bool
    counts_out: bool
    ends: bool


def plan(targets: tuple[JobState, ...]) -> Plan | None:
    """The plan of ``targets`` reported in this order, or None when it is not plain.

    The first move's source is the job's state, which only the database knows (the
    check looks it up in ``ROUTES``); every later source is the state the one before
    left the job in.
    """
    first = TARGETS.get(targets[0])
    if first is None:
        return None
    moves: list[_Move | None] = [_Move(None, first.target.value, _auto(first))]
    state, last = first.final, first
    flags = [first.asks_hooks, first.counts_in, first.counts_out]
    for target in targets[1:]:
        if target is state:
            moves.append(None)  # as the Advancer: a job already there does not move
            continue
        route = ROUTES.get((state, target))
        if route is None:
            return None
        moves.append(_Move(state.value, target.value, _auto(route)))
        asked = (route.asks_hooks, route.counts_in, route.counts_out)
        flags = [f or g for f, g in zip(flags, asked, strict=True)]
        state, last = route.final, route
    asks_hooks, counts_in, counts_out = flags
    return Plan(
        first=targets[0],
        moves=tuple(moves),
        final=state,
        keeps_session=last.keeps_session,
        asks_hooks=asks_hooks,
        counts_in=counts_in,
        counts_out=counts_out,
        ends=state in FINAL,
    )


_PLANS: dict[tuple[JobState, ...], Plan | None] = {}
_ZERO = timedelta(0)


def _utc(ts: datetime | None) -> datetime | None:
    # orjson writes a datetime in UTC with "Z" (``dumps``); only another offset needs work
    if ts is not None and ts.tzinfo is not None and ts.utcoffset() != _ZERO:
        return ts.astimezone(UTC)
    return ts


def row(
    job_id: int, reports: Sequence[tuple[JobState, datetime | None, dict[str, Any]]], rc: int | None
) -> Row | None:
    """The payload row of one job's reports (target, timestamp, Event data) in order,
    and its last return code; None when they are not plain (the Advancer's then)."""
    key = tuple(r[0] for r in reports)
    if key not in _PLANS:
        _PLANS[key] = plan(key)
    p = _PLANS[key]
    if p is None:
        return None
    events: list[Step] = []
    for move, (_target, ts, data) in zip(p.moves, reports, strict=True):
        if move is not None:
            events.append([move.source, move.target, _utc(ts), data])
            events.extend(move.auto)
    flags = (p.asks_hooks, p.counts_in, p.counts_out, p.ends)
    return [job_id, p.first.value, rc, events, p.final.value, int(p.keeps_session), *map(int, flags)]


def dumps(rows: Sequence[Row]) -> str:
    return orjson.dumps(rows, option=orjson.OPT_UTC_Z | orjson.OPT_NAIVE_UTC).decode()


# ---------------------------------------------------------------- SQL


def _lit(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    # state names only (StrEnum values: capitals and underscores)
    assert str(value).replace("_", "").isalpha(), value
    return f"'{value}'"


def _values(name: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    body = ", ".join("(" + ", ".join(_lit(v) for v in row) + ")" for row in rows)
    return f"{name}({', '.join(columns)}) AS (VALUES {body})"


#: the plain first moves (the source is the job's state, known only to the database)
_ROUTES_CTE = _values("r", ("source", "target"), [(r.source, r.target) for r in ROUTES.values()])

_COLUMNS = ("id", "first", "rc", "events", "final", "keeps", "asks_hooks", "counts_in", "counts_out", "ends")
_PAYLOAD = (
    "p AS (SELECT x.ord, (x.e->>0)::bigint AS id, x.e->>1 AS first, (x.e->>2)::int AS rc,"
    " x.e->3 AS events, x.e->>4 AS final, "
    + ", ".join(f"(x.e->>{i})::int AS {name}" for i, name in enumerate(_COLUMNS) if i >= 5)
    + " FROM json_array_elements(CAST(:p AS json)) WITH ORDINALITY AS x(e, ord))"
)

# Lock the rows first (id order: two requests never wait on each other in a circle),
# so nobody changes a job between this check and the writes. The ids go in as one
# array (``= ANY(ARRAY(...))``, an index scan on the primary key whatever the
# statistics say): as ``IN (SELECT id FROM p)`` the planner, with the table's
# statistics taken before a bulk create, compared every job of the owner with every
# payload row (2.5 million comparisons, 0.5 s, for 1,000 reports over 3,000 jobs).
_CHECK = text(
    f"WITH {_PAYLOAD}, {_ROUTES_CTE},"
    " j AS (SELECT id, state, app_id, n_stage_in, n_stage_out, has_children FROM jobs"
    " WHERE id = ANY(ARRAY(SELECT id FROM p)) AND owner_id = :o AND site_id = coalesce(:s, site_id)"
    " ORDER BY id FOR UPDATE)"
    " SELECT p.ord FROM p LEFT JOIN j ON j.id = p.id"
    " LEFT JOIN r ON r.source = j.state AND r.target = p.first"
    " WHERE r.target IS NULL"
    " OR (p.counts_in = 1 AND j.n_stage_in > 0) OR (p.counts_out = 1 AND j.n_stage_out > 0)"
    " OR (p.ends = 1 AND j.has_children)"
    " OR (p.asks_hooks = 1 AND j.app_id IN"
    " (SELECT id FROM apps WHERE owner_id = :o AND json_array_length(hooks) > 0))"
    " ORDER BY p.ord"
)

_EVENTS = text(
    f"WITH {_PAYLOAD}"
    " INSERT INTO events (owner_id, site_id, job_id, from_state, to_state, timestamp, data)"
    " SELECT j.owner_id, j.site_id, j.id, coalesce(ev.v->>0, j.state), ev.v->>1,"
    " coalesce((ev.v->>2)::timestamptz AT TIME ZONE 'UTC', :now), ev.v->3"
    " FROM p CROSS JOIN jobs AS j CROSS JOIN json_array_elements(p.events) WITH ORDINALITY AS ev(v, k)"
    " WHERE j.id = p.id ORDER BY p.ord, ev.k"
)

_JOBS = text(
    f"WITH {_PAYLOAD}"
    " UPDATE jobs SET state = p.final, return_code = coalesce(p.rc, jobs.return_code),"
    " session_id = CASE WHEN p.keeps = 1 THEN jobs.session_id END, updated_at = :now"
    " FROM p WHERE jobs.id = p.id"
)


def not_plain(conn: Connection, owner_id: int, site_id: int | None, rows: Sequence[Row]) -> list[int]:
    """Positions of ``rows`` that the Advancer must take (all rows locked)."""
    if not rows:
        return []
    result = conn.execute(_CHECK, {"p": dumps(rows), "o": owner_id, "s": site_id})
    return [int(ord_) - 1 for ord_ in result.scalars()]  # the ordinality counts from 1


def apply(conn: Connection, rows: Sequence[Row], now: datetime) -> None:
    """Write the Events and the new states of ``rows``, all plain (see ``not_plain``)."""
    if not rows:
        return
    params = {"p": dumps(rows), "now": now}
    conn.execute(_EVENTS, params)
    conn.execute(_JOBS, params)
