"""Sending the launcher's reports: batched, journaled, kept until the server takes them.

The engine's reports (runner/launcher/sink.py) are written to the journal as they
come and queued here; a background thread sends them every ``interval_sec`` in
batches (``POST /sessions/{id}/reports``). A report leaves the queue only when the
server has taken it: applied, or answered as moot (the job was taken by another
launcher, killed, retried, deleted: runner/server/services/reports.py). Nothing
else drops one:

- the server unreachable, or answering 5xx: kept, sent again with backoff (up to
  ``MAX_BACKOFF_SEC`` apart), for as long as the launcher lives; then the journal
  keeps them for the next launcher of the site;
- 401: the client renews its credential and sends the batch again by itself
  (runner.client.auth); a 401 after that is kept and tried again with backoff, like
  an outage (the heartbeat decides whether the launcher must stop);
- 404 for the session the reports were made under: sent under the current session
  (the server checks each job's holder and attempt); 404 for the current session:
  the session is renewed (runner/launcher/session.py) and the batch waits for it;
- 413 or 422: the batch is halved until the one report the server cannot read is
  alone; that one is a bug, logged as an error, and counted as moot.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable

from runner.client import Client
from runner.client.errors import InvalidRequest, NotFound, ToluError
from runner.launcher.journal import Entry, Journal, Report
from runner.launcher.session import LauncherSession
from runner.models import MAX_BULK, MootReport

log = logging.getLogger("runner.launcher")

#: longest wait between two tries while the server does not take the reports.
MAX_BACKOFF_SEC = 10.0


class Reporter:
    """Collects reports, journals them, sends them in batches from a background thread."""

    def __init__(
        self,
        client: Client,
        session: LauncherSession,
        journal: Journal,
        *,
        interval_sec: float,
        on_moot: Callable[[list[MootReport]], None] | None = None,
    ) -> None:
        # its own connection pool and few retries: flush() keeps trying with its own backoff
        self._client = client.clone(retries=2)
        self.session = session
        self.journal = journal
        self._interval = interval_sec
        self.on_moot = on_moot
        self._pending: list[Entry] = []
        self._lock = threading.Lock()
        self._cv = threading.Condition(self._lock)
        self._send_lock = threading.Lock()
        self._stop = False
        #: send now, not at the next tick (wake())
        self._woken = False
        self._thread: threading.Thread | None = None
        self._failures = 0
        self._next_try = 0.0
        #: sessions a 404 showed to be gone (their reports go under the current one)
        self._gone: set[int] = set()
        #: reports the server applied / answered as moot, and requests sent.
        self.accepted = 0
        self.moot = 0
        self.requests = 0

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="tolu-reporter", daemon=True)
        self._thread.start()

    def add(self, session_id: int, reports: Iterable[Report]) -> None:
        """Journal ``reports`` (made under ``session_id``) and queue them, in order."""
        entries = self.journal.append(session_id, reports)
        with self._lock:
            self._pending.extend(entries)

    def add_entries(self, entries: Iterable[Entry]) -> None:
        """Queue entries taken over from a dead launcher's journal (already in ours)."""
        with self._lock:
            self._pending.extend(entries)

    def wake(self) -> None:
        """Send what is queued now rather than at the next tick: the launcher holds no job,
        so these are the last reports for a while, and the jobs' final states (and the
        next acquire's worth of work elsewhere) should not wait out the interval."""
        with self._cv:
            self._woken = True
            self._cv.notify()

    @property
    def failing(self) -> bool:
        """The last try to send did not go through (the server is away, or refuses us)."""
        return self._failures > 0

    @property
    def pending(self) -> int:
        with self._lock:
            return len(self._pending)

    def _loop(self) -> None:
        while True:
            with self._cv:
                self._cv.wait_for(lambda: self._stop or self._woken, self._interval)
                self._woken = False
                stop = self._stop
            if stop:
                return
            try:
                self.flush()
            except Exception:  # never let the reporting thread die: the reports stay queued
                log.exception("status report failed; the reports are kept")

    def flush(self) -> bool:
        """Try to send everything queued now; True when nothing is left."""
        with self._send_lock:
            if time.monotonic() < self._next_try:
                return False
            with self._lock:
                batch = list(self._pending)
            if not batch:
                return True
            self.journal.sync()
            try:
                for part in _runs(batch):
                    self._send(part)
                    with self._lock:
                        del self._pending[: len(part)]
            except ToluError as exc:
                self._failures += 1
                wait = min(MAX_BACKOFF_SEC, self._interval * 2 ** min(self._failures, 10))
                self._next_try = time.monotonic() + wait
                if self._failures == 1 or self._failures % 10 == 0:
                    log.warning(
                        "%d status reports kept, trying again in %.1f s (%d failed tries): %s",
                        len(batch), wait, self._failures, exc,
                    )
                return False
            if self._failures:
                log.info("status reports go through again after %d failed tries", self._failures)
            self._failures = 0
            self._next_try = 0.0
            with self._lock:
                return not self._pending

    def _send(self, part: list[Entry]) -> None:
        """One request for ``part`` (all made under one session), until the server took it."""
        current = self.session.id
        sid = part[0].session_id
        target = current if sid in self._gone else sid
        try:
            result = self._client.sessions.report_json(target, [e.report.json for e in part])
        except NotFound:
            if target != current:
                # the session they were made under is gone: the current one reports them
                self._gone.add(sid)
                self._send(part)
                return
            self.session.lost(current)
            raise
        except InvalidRequest as exc:
            if len(part) > 1:
                mid = len(part) // 2
                self._send(part[:mid])
                self._send(part[mid:])
                return
            log.error("job %d: the server cannot read this report, dropped: %s", part[0].report.id, exc)
            self._settled(part, [MootReport(id=part[0].report.id, attempt=part[0].report.attempt,
                                            state=part[0].report.state, reason=str(exc))])
            return
        self.requests += 1
        self._settled(part, result.moot)

    def _settled(self, part: list[Entry], moot: list[MootReport]) -> None:
        self.journal.ack(e.seq for e in part)
        self.moot += len(moot)
        self.accepted += len(part) - len(moot)
        for m in moot:
            log.info("job %d: %s report for attempt %d is moot: %s", m.id, m.state, m.attempt, m.reason)
        if moot and self.on_moot is not None:
            self.on_moot(moot)

    def close(self, timeout_sec: float) -> int:
        """Stop the thread, then keep trying to send what is left for up to ``timeout_sec``;
        returns how many reports are still unsent (they stay in the journal)."""
        with self._cv:
            self._stop = True
            self._cv.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=60)
        deadline = time.monotonic() + timeout_sec
        while not self.flush() and time.monotonic() < deadline:
            time.sleep(min(1.0, max(0.0, self._next_try - time.monotonic())) or 0.05)
        self._client.close()
        return self.pending


def _runs(batch: list[Entry]) -> list[list[Entry]]:
    """Consecutive entries of one session, at most MAX_BULK each, in order."""
    runs: list[list[Entry]] = []
    for e in batch:
        if runs and runs[-1][0].session_id == e.session_id and len(runs[-1]) < MAX_BULK:
            runs[-1].append(e)
        else:
            runs.append([e])
    return runs
