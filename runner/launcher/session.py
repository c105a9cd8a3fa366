"""A launcher's conversation with the server: session, heartbeats, batched status.

Nothing here makes one request per job. Status changes go into a ``Reporter`` that
a background thread flushes every ``report_interval_sec`` as one bulk update (two
when a job both started and ended since the last flush, because a bulk update
names each job once). Each thread has its own ``Client`` (connection pool).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from runner.client import Client
from runner.client.errors import APIError, Conflict, InvalidRequest, NotFound, ToluError, TransportError
from runner.models import AcquireSpec, Job, JobUpdate, Session
from runner.states import JobState

log = logging.getLogger(__name__)


def ts(t: float) -> datetime:
    return datetime.fromtimestamp(t, tz=UTC)


def clone(client: Client) -> Client:
    """A client of the same credential with its own connection pool (one per thread)."""
    return client.clone()


class Reporter:
    """Collects job updates and sends them in bulk from a background thread."""

    def __init__(self, client: Client, interval_sec: float) -> None:
        self._client = clone(client)
        self._interval = interval_sec
        self._pending: list[JobUpdate] = []
        self._lock = threading.Lock()
        self._cv = threading.Condition(self._lock)
        self._stop = False
        self._thread: threading.Thread | None = None
        self.sent = 0
        self.requests = 0
        self.dropped: list[tuple[JobUpdate, str]] = []

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="tolu-reporter", daemon=True)
        self._thread.start()

    def add(self, *updates: JobUpdate) -> None:
        with self._lock:
            self._pending.extend(updates)

    def update(self, job_id: int, state: JobState, when: float, **fields: Any) -> None:
        self.add(JobUpdate(id=job_id, state=state, state_timestamp=ts(when), **fields))

    def _loop(self) -> None:
        while True:
            with self._cv:
                self._cv.wait(self._interval)
                stop = self._stop
            try:
                self.flush()
            except Exception:  # never let the reporting thread die silently
                log.exception("status report failed")
            if stop:
                return

    def flush(self) -> None:
        """Send everything pending now (also called by the owner before it exits)."""
        with self._lock:
            batch, self._pending = self._pending, []
        if not batch:
            return
        try:
            for part in _rounds(batch):
                self._send(part)
        except TransportError as exc:
            # Keep the updates for the next flush; the server may come back.
            log.warning("server unreachable, %d status updates kept for later: %s", len(batch), exc)
            with self._lock:
                self._pending[:0] = batch
            return

    def _send(self, part: list[JobUpdate]) -> None:
        try:
            self._client.jobs.bulk_update(part, returning=False)
            self.requests += 1
            self.sent += len(part)
        except InvalidRequest as exc:
            # a bug, not a state: resending would fail the same way forever
            log.error("server rejected %d status updates: %s", len(part), exc)
            self.dropped.extend((u, str(exc)) for u in part)
        except (Conflict, NotFound) as exc:
            # All-or-nothing bulk: one job that changed under us (killed by its owner,
            # deleted) must not sink the others, so find it by halving.
            if len(part) == 1:
                log.warning("job %s: update to %s refused: %s", part[0].id, part[0].state, exc)
                self.dropped.append((part[0], str(exc)))
                return
            mid = len(part) // 2
            self._send(part[:mid])
            self._send(part[mid:])

    def close(self) -> None:
        with self._cv:
            self._stop = True
            self._cv.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=60)
        self.flush()
        self._client.close()


def _rounds(batch: list[JobUpdate]) -> list[list[JobUpdate]]:
    """Split into requests in which each job appears at most once, keeping order."""
    rounds: list[list[JobUpdate]] = []
    seen: list[set[int | None]] = []
    last_round: dict[int | None, int] = {}
    for u in batch:
        i = last_round.get(u.id, -1) + 1
        while i < len(rounds) and u.id in seen[i]:
            i += 1
        if i == len(rounds):
            rounds.append([])
            seen.append(set())
        rounds[i].append(u)
        seen[i].add(u.id)
        last_round[u.id] = i
    return rounds


class LauncherSession:
    """One server session: create, heartbeat in the background, acquire, end."""

    def __init__(
        self,
        client: Client,
        site_id: int,
        *,
        batch_job_id: int | None = None,
        heartbeat_sec: float = 10.0,
        on_lost: Callable[[str], None] | None = None,
    ) -> None:
        self.client = client
        self.site_id = site_id
        self.batch_job_id = batch_job_id
        self.heartbeat_sec = heartbeat_sec
        self.on_lost = on_lost
        self.session: Session | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def id(self) -> int:
        if self.session is None:
            raise RuntimeError("session not started")
        return self.session.id

    def start(self) -> Session:
        # The session expires after three missed heartbeats.
        self.session = self.client.sessions.create(
            self.site_id, batch_job_id=self.batch_job_id, ttl_sec=3 * self.heartbeat_sec
        )
        self._thread = threading.Thread(target=self._beat, name="tolu-heartbeat", daemon=True)
        self._thread.start()
        log.info("session %d opened (heartbeat every %.1f s)", self.session.id, self.heartbeat_sec)
        return self.session

    def _beat(self) -> None:
        client = clone(self.client)
        try:
            while not self._stop.wait(self.heartbeat_sec):
                try:
                    client.sessions.heartbeat(self.id)
                except NotFound:
                    log.error("session %d is gone on the server (expired?)", self.id)
                    if self.on_lost:
                        self.on_lost("session expired on the server")
                    return
                except ToluError as exc:
                    log.warning("heartbeat failed: %s", exc)
        finally:
            client.close()

    def acquire(self, spec: AcquireSpec) -> list[Job]:
        started = time.perf_counter()
        jobs = self.client.sessions.acquire(self.id, spec)
        if jobs:
            log.debug("acquired %d jobs in %.3f s", len(jobs), time.perf_counter() - started)
        return jobs

    def close(self) -> None:
        """End the session: the server releases held jobs (RUNNING ones go RUN_TIMEOUT)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self.session is not None:
            try:
                self.client.sessions.delete(self.session.id)
            except (APIError, TransportError) as exc:
                log.warning("could not end session %d: %s", self.session.id, exc)
            log.info("session %d closed", self.session.id)
