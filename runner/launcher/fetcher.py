"""Acquiring jobs in a background thread, so the loop that runs them never waits on HTTP."""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections.abc import Callable

from runner.client.errors import ToluError
from runner.launcher.context import Context
from runner.launcher.tasks import Task
from runner.models import AcquireSpec

log = logging.getLogger("runner.launcher")

#: longest wait between acquire attempts while the server has nothing for us.
IDLE_ACQUIRE_SEC = 1.0
#: the first wait after an empty answer; it doubles with each empty answer up to
#: IDLE_ACQUIRE_SEC. Jobs created just after a launcher ran dry start within tens of
#: milliseconds (their wait is the queue's, not a polling period), and a launcher idle
#: for long still asks only once a second.
FIRST_IDLE_SEC = 0.05


class Fetcher:
    """Acquires jobs in a background thread so the loop that runs them never waits on HTTP.

    The loop asks with ``request(spec)`` when it has room (at most one request in
    flight), and collects ready Tasks with ``take()``; ``on_ready`` is called (from
    the fetcher thread) when a batch arrives, to wake the loop.
    """

    def __init__(self, ctx: Context, on_ready: Callable[[], None] | None = None) -> None:
        self.ctx = ctx
        self.on_ready = on_ready
        self._cv = threading.Condition()
        self._spec: AcquireSpec | None = None
        self._results: list[Task] = []
        self._busy = False
        self._sent_at = 0.0
        #: when the first of the failed acquires in a row was sent
        self._failing_since = 0.0
        self._closed = False
        #: no new request before this time (the server had nothing last time).
        self.quiet_until = 0.0
        self.last_count = 0
        #: the last acquire failed (server or database away): the launcher is not idle,
        #: it cannot know whether there is work.
        self.failing = False
        #: empty answers in a row (how long to wait before the next attempt)
        self._empty = 0
        #: seconds one acquire takes (moving average): how far ahead the loop must ask.
        self.latency = 0.05
        #: how long the work the launcher holds lasts at its finishing rate (set by its
        #: loop): after an empty answer the next ask waits for half of it, for nothing
        #: acquired sooner could start sooner
        self.hold_sec = 0.0
        #: the name of the acquire whose answer has not come yet: sent again with every try
        #: until one is answered, so that the jobs of an answer lost on its way (the server
        #: killed after its commit) come with the retry (AcquireSpec.request_id)
        self._request_id: str | None = None
        self._thread = threading.Thread(target=self._loop, name="tolu-fetcher", daemon=True)

    def start(self) -> None:
        self._thread.start()

    @property
    def busy(self) -> bool:
        return self._busy

    def unsure(self) -> bool:
        """Whether the launcher cannot know if there is work, so is not idle: the last
        acquire failed (server or database away), or the one on its way has been for
        over IDLE_ACQUIRE_SEC (the client retrying it). An answer takes milliseconds, and
        an idle launcher sends one a second, so a request in flight alone does not count."""
        return self.away_for() > 0

    def away_for(self) -> float:
        """Seconds the server has not answered the acquires: since the first of the failed
        tries in a row was sent, or since the one on its way was (when that is over
        IDLE_ACQUIRE_SEC ago); 0 while it answers."""
        now = time.time()
        if self.failing:
            return max(now - self._failing_since, 1e-3)
        if self._busy and now - self._sent_at > IDLE_ACQUIRE_SEC:
            return now - self._sent_at
        return 0.0

    def stop_if_server_gone(self) -> bool:
        """For a launcher that holds no job: once the server has been away for
        ``launcher.server_wait_sec``, ask it to stop (saying why) and say True."""
        away = self.away_for()
        if away <= 0 or away < self.ctx.server_wait_sec:
            return False
        self.ctx.server_away = True
        self.ctx.request_stop(
            f"nothing to run here and the server away for {away:.0f} s "
            "(launcher.server_wait_sec, --wait-for-server)"
        )
        return True

    def can_request(self) -> bool:
        return not self._busy and time.time() >= self.quiet_until

    def request(self, spec: AcquireSpec) -> None:
        with self._cv:
            if self._busy:
                return
            self._busy = True
            self._sent_at = time.time()
            self._spec = spec
            self._cv.notify()

    def holding(self, tasks: int, rate: float) -> None:
        """The launcher holds ``tasks`` not yet ended and ends ``rate`` per second."""
        self.hold_sec = tasks / rate if rate > 0 else 0.0

    def idle_wait(self) -> float:
        """Seconds before asking again after ``_empty`` empty answers in a row, and at
        least half of what the work in hand lasts (``hold_sec``): a launcher that holds
        the rest of a run does not ask every 50 ms for more (each ask costs the server
        about 2 ms of CPU)."""
        backoff = FIRST_IDLE_SEC * 2 ** max(0, self._empty - 1)
        return min(IDLE_ACQUIRE_SEC, max(backoff, self.hold_sec / 2))

    def take(self) -> list[Task]:
        with self._cv:
            out, self._results = self._results, []
            return out

    def _loop(self) -> None:
        while True:
            with self._cv:
                while self._spec is None and not self._closed:
                    self._cv.wait()
                if self._closed:
                    return
                spec, self._spec = self._spec, None
            assert spec is not None
            tasks: list[Task] = []
            t0 = time.perf_counter()
            if self._request_id is None:
                self._request_id = secrets.token_hex(8)
            spec = spec.model_copy(update={"request_id": self._request_id})
            try:
                jobs = self.ctx.session.acquire(spec)
                self._request_id = None  # answered: the next acquire is a new one
                self.latency = 0.7 * self.latency + 0.3 * (time.perf_counter() - t0)
                if jobs:
                    log.debug("acquired %d job(s)", len(jobs))
                    tasks = self.ctx.make_tasks(jobs)
                self.last_count = len(jobs)
                self.failing = False
                # nothing now: ask again a little later, not in a tight loop
                self._empty = 0 if jobs else self._empty + 1
                self.quiet_until = 0.0 if jobs else time.time() + self.idle_wait()
            except ToluError as exc:
                if not self.failing:
                    log.warning("acquire failed (trying again every %g s): %s", IDLE_ACQUIRE_SEC, exc)
                    self._failing_since = self._sent_at
                self.failing = True
                self.quiet_until = time.time() + IDLE_ACQUIRE_SEC
            except Exception:  # never let the fetching thread die with a request in flight
                log.exception("acquire failed")
                if not self.failing:
                    self._failing_since = self._sent_at
                self.failing = True
                self.quiet_until = time.time() + IDLE_ACQUIRE_SEC
            with self._cv:
                self._results.extend(tasks)
                self._busy = False
            if self.on_ready is not None:
                self.on_ready()

    def close(self) -> None:
        """Stop the thread. An acquire the client is still retrying against a server that
        has been away is not waited for: the thread is a daemon, and jobs its answer might
        yet bring stay with the session, which the server releases (DELETE) or expires."""
        with self._cv:
            self._closed = True
            self._cv.notify()
        if self._thread.is_alive():
            self._thread.join(timeout=IDLE_ACQUIRE_SEC if self.away_for() > 0 else 60)
