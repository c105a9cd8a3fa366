"""Job transitions inside one write transaction, and the steps the server takes itself.

An ``Advancer`` is made per request. Services load the jobs they touch as
``JobRec``s, ask for transitions (each checked against runner.states), then call
``flush()``: it takes every automatic step of docs/api.md ("What the server does by
itself"), writes the jobs with one executemany and all Events with one insert, and
follows parents that finished or failed down to their waiting children.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Select, bindparam, func, select, update

from runner.server import bulk
from runner.server import tables as t
from runner.server.bulk import ids_in
from runner.server.db import utcnow
from runner.states import JobState, check

S = JobState
_VALUE = {s: s.value for s in JobState}

#: Columns loaded into a JobRec.
REC_COLUMNS = (
    t.jobs.c.id,
    t.jobs.c.owner_id,
    t.jobs.c.site_id,
    t.jobs.c.app_id,
    t.jobs.c.state,
    t.jobs.c.retry_count,
    t.jobs.c.retry_limit,
    t.jobs.c.return_code,
    t.jobs.c.session_id,
    t.jobs.c.has_children,
    t.jobs.c.n_stage_in,
    t.jobs.c.n_stage_out,
    t.jobs.c.attempt,
)

EVENT_INSERT_COLUMNS = ("owner_id", "site_id", "job_id", "from_state", "to_state", "timestamp", "data")

#: Largest IN (...) list sent in one statement (SQLite allows 32,766 variables).
CHUNK = 5_000


def chunks(values: Sequence[Any], size: int = CHUNK) -> Iterable[Sequence[Any]]:
    for i in range(0, len(values), size):
        yield values[i : i + size]


@dataclass(slots=True)
class JobRec:
    """What the life cycle needs to know about one job."""

    id: int
    owner_id: int
    site_id: int
    app_id: int
    state: JobState
    retry_count: int
    retry_limit: int
    return_code: int | None
    session_id: int | None
    has_children: bool
    n_stage_in: int
    n_stage_out: int
    #: how many times the job was made runnable again (see ``_step``).
    attempt: int = 0
    dirty: bool = field(default=False)

    @classmethod
    def from_row(cls, row: Sequence[Any]) -> JobRec:
        return cls(
            row[0],
            row[1],
            row[2],
            row[3],
            S(row[4]),
            row[5],
            row[6],
            row[7],
            row[8],
            bool(row[9]),
            row[10],
            row[11],
            row[12],
        )


def load_recs(
    conn: Connection, ids: Sequence[int], owner_id: int | None = None, site_id: int | None = None
) -> dict[int, JobRec]:
    """The jobs ``ids`` (of ``owner_id``, at ``site_id``) to move, inside a write transaction.

    PostgreSQL: the rows are locked (``FOR UPDATE``, in id order, so two requests
    never wait on each other in a circle) until the transaction ends; another server
    worker changing the same job waits, then sees the new state. SQLite's writers
    are serialized by ``BEGIN IMMEDIATE`` already.
    """
    if not ids:
        return {}
    stmt = recs_query(bulk.is_sqlite(conn), owner_id is not None, site_id is not None)
    params = {"ids": [int(i) for i in ids], "owner": owner_id, "site": site_id}
    return {row[0]: JobRec.from_row(row) for row in conn.execute(stmt, params)}


@functools.cache
def recs_query(sqlite: bool, by_owner: bool, by_site: bool) -> Select[Any]:
    """``load_recs``' statement, built once per kind (building one cost more than running
    it for a few jobs); the parameters are ``ids``, ``owner`` and ``site``.

    The ids drive it: SQLite's planner, without statistics (a young database, or before
    the first refresh), would rather walk the owner's or the site's index and test each of
    their jobs against the ids (4 ms per 1,000 ids among 20,000 jobs, growing with the
    table). ``col + 0`` is no index's column, so only the primary key is left (0.9 ms,
    whatever the table's size)."""
    stmt = select(*REC_COLUMNS).where(bulk.ids_in_param(t.jobs.c.id, "ids"))
    c = t.jobs.c
    owner, site = (c.owner_id + 0, c.site_id + 0) if sqlite else (c.owner_id, c.site_id)
    if by_owner:
        stmt = stmt.where(owner == bindparam("owner"))
    if by_site:  # a site token reaches its site's jobs only
        stmt = stmt.where(site == bindparam("site"))
    if not sqlite:
        stmt = stmt.order_by(c.id).with_for_update(of=t.jobs)
    return stmt


class Advancer:
    def __init__(self, conn: Connection, now: datetime | None = None) -> None:
        self.conn = conn
        self.now = now or utcnow()
        self.events: list[tuple[Any, ...]] = []
        self._now_db = bulk.ts(conn, self.now)
        self.recs: dict[int, JobRec] = {}
        self._hooks: dict[int, frozenset[str]] = {}
        self._finished_parents: list[int] = []
        self._failed_parents: list[tuple[int, JobState]] = []

    # ------------------------------------------------------------ requests

    def track(self, rec: JobRec) -> JobRec:
        self.recs.setdefault(rec.id, rec)
        return self.recs[rec.id]

    def record(
        self,
        rec: JobRec,
        from_state: JobState | None,
        to_state: JobState,
        ts: datetime | None = None,
        data: dict[str, Any] | None = None,
    ) -> None:
        """Write the Event of a transition (also the creation event, from None)."""
        self.events.append(
            (
                rec.owner_id,
                rec.site_id,
                rec.id,
                _VALUE[from_state] if from_state else None,
                _VALUE[to_state],
                self._now_db if ts is None else bulk.ts(self.conn, ts),
                bulk.dumps(data) if data else "{}",
            )
        )

    def move(
        self,
        rec: JobRec,
        target: JobState,
        ts: datetime | None = None,
        data: dict[str, Any] | None = None,
    ) -> None:
        """One checked transition (raises runner.states.TransitionError), then the automatic steps."""
        self.track(rec)
        self._step(rec, target, ts, data)
        self.settle(rec)

    def _step(self, rec: JobRec, target: JobState, ts: datetime | None, data: dict[str, Any] | None) -> None:
        check(rec.id, rec.state, target)
        self.record(rec, rec.state, target, ts, data)
        if target is S.RESTART_READY and rec.state in (S.RUN_ERROR, S.RUN_TIMEOUT):
            # Every restart after an error or a timeout uses up a retry, whether the
            # server decided it or a site hook did (else a hook could retry forever).
            rec.retry_count += 1
        if target is S.RESTART_READY:
            # Every way back to RESTART_READY (a retry, a hook, a user) starts a new
            # attempt: what a launcher noted about an earlier one (a success it could
            # not report) must never stand in for running this one.
            rec.attempt += 1
        rec.state = target
        rec.dirty = True
        if target is not S.RUNNING:
            # A job is held by a session only while acquired or running; anything
            # else frees it (RESTART_READY jobs must be acquirable again).
            rec.session_id = None
        if rec.has_children:
            if target is S.JOB_FINISHED:
                self._finished_parents.append(rec.id)
            elif target in (S.FAILED, S.KILLED):
                self._failed_parents.append((rec.id, target))

    # ------------------------------------------------------------ automatic steps

    def hooks(self, app_id: int) -> frozenset[str]:
        if app_id not in self._hooks:
            value = self.conn.execute(select(t.apps.c.hooks).where(t.apps.c.id == app_id)).scalar()
            self._hooks[app_id] = frozenset(value or ())
        return self._hooks[app_id]

    def set_hooks(self, app_id: int, hooks: Iterable[str]) -> None:
        self._hooks[app_id] = frozenset(hooks)

    def _pending_transfers(self, rec: JobRec, direction: str) -> int:
        if (rec.n_stage_in if direction == "in" else rec.n_stage_out) == 0:
            return 0
        stmt = select(func.count()).where(
            t.transfer_items.c.job_id == rec.id,
            t.transfer_items.c.direction == direction,
            t.transfer_items.c.state != "done",
        )
        return int(self.conn.execute(stmt).scalar() or 0)

    def _retry(self, rec: JobRec) -> tuple[JobState, dict[str, Any]]:
        if rec.retry_count < rec.retry_limit:
            return S.RESTART_READY, {"retry_count": rec.retry_count + 1}
        return S.FAILED, {"reason": f"{rec.state.value}: retry limit {rec.retry_limit} reached"}

    def next_auto(self, rec: JobRec) -> tuple[JobState, dict[str, Any]] | None:
        state = rec.state
        if state is S.READY:
            return (S.STAGED_IN, {}) if self._pending_transfers(rec, "in") == 0 else None
        if state is S.STAGED_IN:
            return None if "preprocess" in self.hooks(rec.app_id) else (S.PREPROCESSED, {})
        if state is S.RUN_DONE:
            return None if "postprocess" in self.hooks(rec.app_id) else (S.POSTPROCESSED, {})
        if state is S.POSTPROCESSED:
            return (S.STAGED_OUT, {}) if self._pending_transfers(rec, "out") == 0 else None
        if state is S.STAGED_OUT:
            return S.JOB_FINISHED, {}
        if state is S.RUN_ERROR:
            return None if "handle_error" in self.hooks(rec.app_id) else self._retry(rec)
        if state is S.RUN_TIMEOUT:
            return None if "handle_timeout" in self.hooks(rec.app_id) else self._retry(rec)
        return None

    def settle(self, rec: JobRec) -> None:
        while (nxt := self.next_auto(rec)) is not None:
            self._step(rec, nxt[0], None, nxt[1])

    def start(self, rec: JobRec, unfinished_parents: bool, failed_parent: str | None, *, fresh: bool) -> None:
        """Route a job out of CREATED (its creation Event is already recorded).

        ``fresh``: the job and its transfer items are not inserted yet (its stage-in
        items are all pending by definition, so there is nothing to look up).
        """
        self.track(rec)
        if failed_parent is not None:
            self._step(rec, S.FAILED, None, {"reason": failed_parent})
        elif unfinished_parents:
            self._step(rec, S.AWAITING_PARENTS, None, None)
        else:
            self._leave_waiting(rec, fresh=fresh)

    def _leave_waiting(self, rec: JobRec, *, fresh: bool = False) -> None:
        self._step(rec, S.READY if rec.n_stage_in else S.STAGED_IN, None, None)
        if not (fresh and rec.state is S.READY):
            self.settle(rec)

    # ------------------------------------------------------------ writing

    def flush(self) -> None:
        """Write what changed, then follow finished / failed parents to their children."""
        while True:
            self._write()
            finished, failed = self._finished_parents, self._failed_parents
            self._finished_parents, self._failed_parents = [], []
            if not finished and not failed:
                return
            self._children_of_failed(failed)
            self._children_of_finished(finished)

    def _write(self) -> None:
        dirty = [r for r in self.recs.values() if r.dirty]
        # Jobs of one batch mostly end alike (same state, return code, ...): one
        # UPDATE ... WHERE id IN (...) per distinct outcome instead of one per job.
        groups: dict[tuple[str, int, int | None, int | None, int], list[int]] = {}
        for r in dirty:
            key = (_VALUE[r.state], r.retry_count, r.return_code, r.session_id, r.attempt)
            groups.setdefault(key, []).append(r.id)
            r.dirty = False
        for (state, retry_count, return_code, session_id, attempt), ids in groups.items():
            if ids:
                self.conn.execute(
                    update(t.jobs)
                    .where(ids_in(t.jobs.c.id, ids))
                    .values(
                        state=state,
                        retry_count=retry_count,
                        return_code=return_code,
                        session_id=session_id,
                        attempt=attempt,
                        updated_at=self.now,
                    )
                )
        if self.events:
            bulk.insert_rows(self.conn, t.events, EVENT_INSERT_COLUMNS, self.events)
            self.events = []

    def _waiting_children(self, parent_ids: Sequence[int]) -> dict[int, list[int]]:
        """child id -> the given parents it waits for (children in AWAITING_PARENTS only)."""
        out: dict[int, list[int]] = {}
        stmt = (
            select(t.job_parents.c.child_id, t.job_parents.c.parent_id)
            .join(t.jobs, t.jobs.c.id == t.job_parents.c.child_id)
            .where(ids_in(t.job_parents.c.parent_id, parent_ids), t.jobs.c.state == S.AWAITING_PARENTS.value)
        )
        for child, parent in self.conn.execute(stmt):
            out.setdefault(child, []).append(parent)
        return out

    def _load_children(self, child_ids: Iterable[int]) -> list[JobRec]:
        ids = [c for c in child_ids if c not in self.recs]
        for rec in load_recs(self.conn, ids).values():
            self.track(rec)
        return [self.recs[c] for c in child_ids if c in self.recs]

    def _children_of_failed(self, failed: list[tuple[int, JobState]]) -> None:
        if not failed:
            return
        why = dict(failed)
        waiting = self._waiting_children(list(why))
        for rec in self._load_children(waiting):
            if rec.state is not S.AWAITING_PARENTS:
                continue
            parent = min(waiting[rec.id])
            self._step(rec, S.FAILED, None, {"reason": f"parent job {parent} is {why[parent].value}"})

    def _children_of_finished(self, finished: list[int]) -> None:
        if not finished:
            return
        waiting = self._waiting_children(finished)
        if not waiting:
            return
        still_waiting: set[int] = set()
        child_ids = list(waiting)
        parent = t.jobs.alias("parent")
        stmt = (
            select(t.job_parents.c.child_id)
            .join(parent, parent.c.id == t.job_parents.c.parent_id)
            .where(ids_in(t.job_parents.c.child_id, child_ids), parent.c.state != S.JOB_FINISHED.value)
            .distinct()
        )
        still_waiting.update(self.conn.execute(stmt).scalars())
        for rec in self._load_children([c for c in child_ids if c not in still_waiting]):
            if rec.state is S.AWAITING_PARENTS:
                self._leave_waiting(rec)
