"""How much work the launcher loops hold beyond what runs: the finishing rate and the look-ahead."""

from __future__ import annotations

import time
from collections import deque

#: seconds of work (at the current finishing rate) held beyond what runs, at least.
AHEAD_SEC = 1.0


class RateMeter:
    """Events per second over the last ``window_sec`` seconds (how fast jobs finish).

    Told when the work it measures begins (``begin``) and when none is left (``idle``),
    it counts the rate from that beginning: 250 tasks done 0.1 s after the first
    started read 2,500 per second at once. Without, a rate counts from the first event
    and over at least ``MIN_SPAN_SEC``, which reads the first half-second low (that 250 as
    500 per second): a launcher's first acquires then bring a few dozen jobs each, a
    request apiece, and its chains are short until the estimate catches up.
    """

    #: the shortest span a rate is taken over when the beginning is not known
    MIN_SPAN_SEC = 0.5
    #: ... and when it is (against a burst of instant failures read as a huge rate)
    MIN_BEGUN_SPAN_SEC = 0.05

    def __init__(self, window_sec: float = 5.0) -> None:
        self.window = window_sec
        self._events: deque[tuple[float, float]] = deque()
        self._total = 0.0
        self._since: float | None = None

    def begin(self) -> None:
        """Work began now, unless it already had (tasks handed out while none were out)."""
        if self._since is None:
            self._since = time.time()

    def idle(self) -> None:
        """No work is out: the next ``begin`` starts a new span."""
        self._since = None

    def add(self, amount: float = 1.0) -> None:
        now = time.time()
        self._events.append((now, amount))
        self._total += amount
        self._trim(now)

    def _trim(self, now: float) -> None:
        while self._events and self._events[0][0] < now - self.window:
            self._total -= self._events.popleft()[1]

    def rate(self) -> float:
        now = time.time()
        self._trim(now)
        if not self._events:
            return 0.0
        if self._since is None:
            return self._total / max(now - self._events[0][0], self.MIN_SPAN_SEC)
        start = max(min(self._since, self._events[0][0]), now - self.window)
        return self._total / max(now - start, self.MIN_BEGUN_SPAN_SEC)


def ahead(rate: float, latency: float, floor: float) -> float:
    """How much to hold beyond what runs: a second's worth of work or four acquire
    round trips, whichever is more, and at least ``floor``. The loops ask again only
    when half of it is used up, so each acquire brings a batch, not a job or two."""
    return max(floor, rate * max(AHEAD_SEC, 4 * latency))
