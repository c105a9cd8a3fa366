"""How much work the launcher loops hold beyond what runs: the finishing rate and the look-ahead."""

from __future__ import annotations

import time
from collections import deque

#: seconds of work (at the current finishing rate) held beyond what runs, at least.
AHEAD_SEC = 1.0


class RateMeter:
    """Events per second over the last ``window_sec`` seconds (how fast jobs finish)."""

    def __init__(self, window_sec: float = 5.0) -> None:
        self.window = window_sec
        self._events: deque[tuple[float, float]] = deque()
        self._total = 0.0

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
        span = max(now - self._events[0][0], 0.5)
        return self._total / span


def ahead(rate: float, latency: float, floor: float) -> float:
    """How much to hold beyond what runs: a second's worth of work or four acquire
    round trips, whichever is more, and at least ``floor``. The loops ask again only
    when half of it is used up, so each acquire brings a batch, not a job or two."""
    return max(floor, rate * max(AHEAD_SEC, 4 * latency))
