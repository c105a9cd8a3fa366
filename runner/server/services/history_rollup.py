"""The History view's 10-second sums, rolled forward from the Event ids when a history is asked for.

``history_cells`` holds, per user, site, 10-second cell of Event time and node-packing
count, the whole-number sums of services/history_events.py over the Events summed in
so far; ``history_rollup`` (one row) says which: every id up to ``high`` but for the
``gaps``. Nothing on the launcher's path writes here: the request that needs the sums
first adds the Events that arrived since (``catch_up``), so a launcher's thousands of
Events a second cost it nothing, and a history costs the Events since the last one.

Time is the Event's timestamp, not its id: an Event reported late with an old
timestamp (a launcher that was cut off for an hour) lands in its old cell when its
new id is read. What leaves or changes the Events takes its share out under the same
lock: deleting jobs (``forget``, from services/purge.py) and changing a job's nodes
(``reweighing``; the scan weighs every Event by the job's resources as they are now).
They also write the lock's row, so that a roll-forward waiting for it starts again.

Ids become visible when their transaction commits, not in id order (PostgreSQL: one
worker's Event 101 may commit while another's 100 is still in flight). An id passed
over is kept as a gap and looked for again by every roll-forward, for
``GAP_TIMEOUT_SEC`` (no transaction of tolu stays open that long after inserting its
Events), as the event stream does (services/event_feed.py). A roll-forward holds the
``history_rollup`` row: on PostgreSQL it reads at REPEATABLE READ, so the ids it
finds, the gaps it notes and the sums it adds come from one snapshot, and one that
started before another worker's roll-forward committed is retried. SQLite has one
writer at a time, so an id below the highest one is there or gone for good: no gaps.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, and_, delete, false, func, literal, or_, select, tuple_, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError

from runner.server import bulk
from runner.server import tables as t
from runner.server.db import Database
from runner.server.services.event_feed import GAP_TIMEOUT_SEC
from runner.server.services.history_events import contributions

log = logging.getLogger("tolu.server.history")

#: Seconds per cell: divides every round interval of 10 s and more (history.NICE_INTERVALS).
CELL_SEC = 10
#: Gap ranges kept at most; beyond that the oldest are given up (and logged).
MAX_GAPS = 64
#: Roll-forwards retried after a PostgreSQL serialization failure (another worker's ran).
RETRIES = 5

_c = t.history_cells.c
_e = t.events.c
_SUMS = ("events", "finished", "failed", "dj", "dj_us", "dn", "dn_us")
_KEY = ("owner_id", "site_id", "start_sec", "packing")


@dataclass
class Rolled:
    """How far the cells have read the Events: every id <= ``high`` but the ``gaps``."""

    high: int = 0
    #: [lo, hi, first seen (epoch seconds)], ascending
    gaps: list[list[float]] = field(default_factory=list)

    def in_gaps(self) -> Any:
        """SQL: an Event id in one of the gaps."""
        return or_(false(), *(and_(_e.id >= int(lo), _e.id <= int(hi)) for lo, hi, _ in self.gaps))

    def summed(self) -> Any:
        """SQL: an Event whose share the cells hold."""
        return and_(_e.id <= self.high, ~self.in_gaps())


def _read(conn: Connection, *, lock: bool) -> Rolled | None:
    stmt = select(t.history_rollup.c.high, t.history_rollup.c.gaps).where(t.history_rollup.c.id == 1)
    if lock and not bulk.is_sqlite(conn):
        stmt = stmt.with_for_update()
    row = conn.execute(stmt).first()
    return None if row is None else Rolled(int(row[0]), [list(g) for g in row[1]])


def _claim(conn: Connection) -> Rolled | None:
    """Lock the state row for a change of the cells outside a roll-forward (purge, new
    nodes), and write it: a roll-forward waiting for the row then fails and starts again
    with a snapshot that has the change (if the row were only locked, it would go on
    with the Events as they were before, and sum Events that are gone)."""
    r = t.history_rollup.c
    row = conn.execute(
        update(t.history_rollup).where(r.id == 1).values(high=r.high).returning(r.high, r.gaps)
    ).first()
    return None if row is None else Rolled(int(row[0]), [list(g) for g in row[1]])


def behind(conn: Connection) -> bool:
    """Whether Events are waiting to be summed in (cheap: the primary key's end)."""
    state = _read(conn, lock=False)
    top = conn.execute(select(func.max(_e.id))).scalar() or 0
    return state is None or bool(state.gaps) or top > state.high


def catch_up(db: Database) -> None:
    """Sum the Events that arrived since the last roll-forward into the cells (if any did)."""
    with db.read() as conn:
        if not behind(conn):
            return
    for attempt in range(RETRIES):
        try:
            with _serializable_write(db) as conn:
                roll_forward(conn)
            return
        except DBAPIError as exc:
            if attempt == RETRIES - 1 or not _serialization_failure(exc):
                raise


@contextmanager
def _serializable_write(db: Database) -> Iterator[Connection]:
    if db.is_sqlite:
        with db.write() as conn:
            yield conn
        return
    with db.engine.connect() as conn:
        conn = conn.execution_options(isolation_level="REPEATABLE READ")
        with conn.begin():
            yield conn


def _serialization_failure(exc: DBAPIError) -> bool:
    # 40001 serialization_failure, 23505 unique_violation (two first roll-forwards
    # inserting the state row), 40P01 deadlock_detected
    return getattr(exc.orig, "sqlstate", None) in ("40001", "23505", "40P01")


def roll_forward(conn: Connection, now: float | None = None) -> int:
    """Sum the Events not yet summed into the cells, inside the caller's transaction (see
    the module doc for its isolation); returns how many cells it wrote."""
    now = time.time() if now is None else now
    state = _read(conn, lock=True)
    if state is None:
        conn.execute(t.history_rollup.insert().values(id=1, high=0, gaps=[]))
        state = Rolled()
    top = int(conn.execute(select(func.max(_e.id))).scalar() or 0)
    if top <= state.high and not state.gaps:
        return 0
    found: list[int] = []
    if state.gaps:
        found = sorted(conn.execute(select(_e.id).where(state.in_gaps())).scalars())
    new_gaps: list[list[float]] = []
    if top > state.high and not bulk.is_sqlite(conn):
        new_gaps = [[lo, hi, now] for lo, hi in _skipped(conn, state.high, top)]
    fresh = and_(_e.id > state.high, _e.id <= top)
    added = _add(conn, or_(fresh, state.in_gaps()), 1)
    gaps = _fill(state.gaps, found) + new_gaps
    gaps = _expire(gaps, now)
    conn.execute(
        update(t.history_rollup)
        .where(t.history_rollup.c.id == 1)
        .values(high=max(state.high, top), gaps=gaps)
    )
    return added


def _skipped(conn: Connection, high: int, top: int) -> list[tuple[int, int]]:
    """The id ranges in (high, top] that no visible Event has."""
    ids = select(_e.id, func.lag(_e.id, 1, high).over(order_by=_e.id).label("prev")).where(
        _e.id > high, _e.id <= top
    )
    w = ids.subquery()
    rows = conn.execute(select(w.c.prev + 1, w.c.id - 1).where(w.c.id > w.c.prev + 1).order_by(w.c.id))
    return [(int(lo), int(hi)) for lo, hi in rows]


def _fill(gaps: list[list[float]], found: Sequence[int]) -> list[list[float]]:
    """``gaps`` less the ids ``found`` (sorted) in them."""
    out: list[list[float]] = []
    k = 0
    for lo, hi, since in gaps:
        start = int(lo)
        while k < len(found) and found[k] <= hi:
            if found[k] >= start:
                if found[k] > start:
                    out.append([start, found[k] - 1, since])
                start = found[k] + 1
            k += 1
        if start <= hi:
            out.append([start, int(hi), since])
    return out


def _expire(gaps: list[list[float]], now: float) -> list[list[float]]:
    kept = [g for g in gaps if now - g[2] <= GAP_TIMEOUT_SEC]
    if len(kept) > MAX_GAPS:
        kept = kept[len(kept) - MAX_GAPS :]
    if len(kept) < len(gaps):
        gone = [g for g in gaps if g not in kept]
        log.warning(
            "history: gave up %d gap(s) of Event ids (rolled back or deleted before they were read): %s",
            len(gone),
            ", ".join(f"{int(lo)}-{int(hi)}" for lo, hi, _ in gone[:10]),
        )
    return kept


def _add(conn: Connection, which: Any, sign: int) -> int:
    """Add (``sign`` 1) or take out (-1) the shares of the counted Events ``which``;
    returns how many cells it wrote."""
    c = contributions(conn, t.events, CELL_SEC, which)
    dn = c.c.d * c.c.nodes
    sums = (
        select(
            c.c.owner_id,
            c.c.site_id,
            c.c.base,
            c.c.packing,
            (func.count() * sign).label("events"),
            (func.sum(c.c.finished) * sign).label("finished"),
            (func.sum(c.c.failed) * sign).label("failed"),
            (func.sum(c.c.d) * sign).label("dj"),
            (func.sum(c.c.d * c.c.off) * sign).label("dj_us"),
            (func.sum(dn) * sign).label("dn"),
            (func.sum(dn * c.c.off) * sign).label("dn_us"),
            func.min(c.c.id).label("min_event_id"),
            func.max(c.c.id).label("max_event_id"),
        )
        # SQLite: an upsert's SELECT needs a WHERE (else ON CONFLICT is read as a join's)
        .where(literal(True))
        .group_by(c.c.owner_id, c.c.site_id, c.c.base, c.c.packing)
    )
    columns = [*_KEY, *_SUMS, "min_event_id", "max_event_id"]
    ins: Any
    if bulk.is_sqlite(conn):
        ins = sqlite.insert(t.history_cells).from_select(columns, sums)
        least, greatest = "min", "max"  # SQLite's two-argument min() and max()
    else:
        ins = postgresql.insert(t.history_cells).from_select(columns, sums)
        least, greatest = "least", "greatest"
    x = ins.excluded
    ins = ins.on_conflict_do_update(
        index_elements=list(_KEY),
        set_={
            **{name: getattr(_c, name) + getattr(x, name) for name in _SUMS},
            "min_event_id": getattr(func, least)(_c.min_event_id, x.min_event_id),
            "max_event_id": getattr(func, greatest)(_c.max_event_id, x.max_event_id),
        },
    )
    return int(conn.execute(ins).rowcount or 0)


def forget(conn: Connection, job_ids: Sequence[int]) -> None:
    """Take the shares of these jobs' Events out of the cells: they are about to be
    deleted, in the caller's transaction (services/purge.py)."""
    state = _claim(conn)
    if state is None or state.high == 0:
        return
    mine = bulk.ids_in(_e.job_id, list(job_ids))
    _add(conn, and_(mine, state.summed()), -1)
    # cells left with no Event in them, of these jobs' users and sites
    j = t.jobs.c
    theirs = select(j.owner_id, j.site_id).where(bulk.ids_in(j.id, list(job_ids))).distinct()
    conn.execute(delete(t.history_cells).where(_c.events == 0, tuple_(_c.owner_id, _c.site_id).in_(theirs)))
    if bulk.is_sqlite(conn):
        # SQLite hands out max(id) + 1: ids above the highest Event left come back, and
        # must be read again when they do
        left = conn.execute(select(func.max(_e.id)).where(_e.id <= state.high, ~mine)).scalar() or 0
        if left < state.high:
            conn.execute(update(t.history_rollup).where(t.history_rollup.c.id == 1).values(high=left))


@contextmanager
def reweighing(conn: Connection, job_ids: Sequence[int]) -> Iterator[None]:
    """Around a change of these jobs' nodes: their Events' shares come out with the old
    weights and go back with the new ones (the scan reads the job's nodes as they are now)."""
    state = _claim(conn)
    if state is None or state.high == 0:
        yield
        return
    which = and_(bulk.ids_in(_e.job_id, list(job_ids)), state.summed())
    _add(conn, which, -1)
    yield
    _add(conn, which, 1)
