"""Reading a user's new Events after a cursor, without losing the ones that commit late.

The event stream (routes/events_stream.py) polls the database, so it works with any
number of server workers and on both databases: no worker needs to hear about a
change made by another. The cursor is an Event id.

Ids are handed out when a row is inserted, but become visible when its transaction
commits. On SQLite writers take turns, so a reader sees ids in order. On PostgreSQL
two workers' transactions interleave: id 101 may commit while 100 is still in flight
(or rolls back, or is purged later). Reading ``id > last seen`` alone would skip 100
for good. So the feed keeps the ids it jumped over as *gaps*, looks for them again
on every poll, and gives a gap up only after ``gap_timeout`` seconds (no transaction
of tolu stays open that long after inserting its Events). The cursor it reports is
the highest id below which nothing can still appear (``settled``): a client that
reconnects with it gets everything it could have missed, and may get again a few
events it already had (above the cursor, before an open gap), which it drops by id.

Every reader sees the same ids, so gaps are tracked over all users' Events; only the
caller's own are returned.
"""

from __future__ import annotations

import bisect
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, and_, func, or_, select

from runner.server import tables as t

log = logging.getLogger("tolu.server.events")

#: Events one poll returns at most (one message of the stream).
BATCH = 5_000
#: Seconds a missing id is waited for before it counts as rolled back or deleted.
GAP_TIMEOUT_SEC = 60.0
#: Gap ranges tracked at most; beyond that the oldest are given up (and logged).
MAX_GAPS = 2_000
#: Gap ranges looked up one by one (``id BETWEEN``); more are read as one id span.
GAPS_BY_RANGE = 64

_e = t.events.c
COLUMNS = (_e.id, _e.owner_id, _e.job_id, _e.site_id, _e.from_state, _e.to_state, _e.timestamp)


@dataclass(slots=True)
class Gap:
    """Ids ``lo..hi`` (inclusive) skipped by the reader, first noticed at ``since``."""

    lo: int
    hi: int
    since: float


def latest_id(conn: Connection) -> int:
    """The highest Event id now visible (0 when there are none)."""
    return int(conn.execute(select(func.max(_e.id))).scalar() or 0)


class EventFeed:
    """The new Events of one user, in batches, after a cursor (see the module doc)."""

    def __init__(
        self,
        owner_id: int,
        cursor: int,
        *,
        site_id: int | None = None,
        gap_timeout: float = GAP_TIMEOUT_SEC,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.owner_id = owner_id
        #: a site token's one site (Principal.site_id): only that site's Events.
        self.site_id = site_id
        #: the highest id read so far.
        self.high = cursor
        self.gaps: list[Gap] = []
        self.gap_timeout = gap_timeout
        self._clock = clock

    @property
    def settled(self) -> int:
        """Every id up to this one has been returned, or never will be: the resume cursor."""
        return self.gaps[0].lo - 1 if self.gaps else self.high

    def poll(self, conn: Connection, limit: int = BATCH) -> tuple[list[dict[str, Any]], bool]:
        """The caller's Events that became visible since the last poll (late ones first
        seen in a gap included), in id order; and whether more are waiting (a full batch)."""
        now = self._clock()
        found = self._fill_gaps(conn) if self.gaps else []
        fresh = conn.execute(select(*COLUMNS).where(_e.id > self.high).order_by(_e.id).limit(limit)).all()
        for row in fresh:
            if row[0] > self.high + 1:
                self._add_gap(self.high + 1, row[0] - 1, now)
            self.high = row[0]
        self._expire(now)
        mine = [
            row
            for row in (*found, *fresh)
            if row[1] == self.owner_id and (self.site_id is None or row[3] == self.site_id)
        ]
        mine.sort(key=lambda row: row[0])
        return [_event(row) for row in mine], len(fresh) == limit

    # ------------------------------------------------------------ gaps

    def _fill_gaps(self, conn: Connection) -> list[Any]:
        if len(self.gaps) <= GAPS_BY_RANGE:
            where = or_(*(and_(_e.id >= g.lo, _e.id <= g.hi) for g in self.gaps))
        else:  # one span: the rows in between are read and dropped below
            where = and_(_e.id >= self.gaps[0].lo, _e.id <= self.gaps[-1].hi)
        return [r for r in conn.execute(select(*COLUMNS).where(where).order_by(_e.id)) if self._take(r[0])]

    def _find(self, event_id: int) -> int:
        """Index of the gap holding ``event_id``, or -1."""
        i = bisect.bisect_right([g.lo for g in self.gaps], event_id) - 1
        return i if i >= 0 and self.gaps[i].hi >= event_id else -1

    def _take(self, event_id: int) -> bool:
        """Remove ``event_id`` from its gap; False when it was in none (already returned)."""
        i = self._find(event_id)
        if i < 0:
            return False
        g = self.gaps[i]
        if g.lo == g.hi:
            del self.gaps[i]
        elif event_id == g.lo:
            g.lo += 1
        elif event_id == g.hi:
            g.hi -= 1
        else:
            self.gaps.insert(i + 1, Gap(event_id + 1, g.hi, g.since))
            g.hi = event_id - 1
        return True

    def _add_gap(self, lo: int, hi: int, now: float) -> None:
        self.gaps.append(Gap(lo, hi, now))  # above every other gap: ids only grow
        if len(self.gaps) > MAX_GAPS:
            self._give_up(len(self.gaps) - MAX_GAPS)

    def _expire(self, now: float) -> None:
        old = 0
        while old < len(self.gaps) and now - self.gaps[old].since > self.gap_timeout:
            old += 1
        # gaps are noticed in id order, so the old ones are the first ones; a younger gap
        # below an older one (split) keeps the older's time, so order holds after splits too
        if old:
            self._give_up(old)

    def _give_up(self, n: int) -> None:
        dropped = self.gaps[:n]
        del self.gaps[:n]
        missing = sum(g.hi - g.lo + 1 for g in dropped)
        log.debug("feed of user %d: %d id(s) up to %d never came", self.owner_id, missing, dropped[-1].hi)


def _event(row: Any) -> dict[str, Any]:
    return {
        "id": row[0],
        "job_id": row[2],
        "site_id": row[3],
        "from_state": row[4],
        "to_state": row[5],
        "timestamp": row[6],
    }
