"""A launcher's session with the server: open, heartbeat, and open again when it is lost.

The server holds a launcher's jobs for its session and ends a session that missed
its heartbeats for ``ttl`` (three heartbeats); the jobs it ran then go RUN_TIMEOUT
and are offered again. Through an outage of any length the heartbeat thread keeps
trying, with backoff (at most one heartbeat period apart, so a server that comes
back hears from every launcher within a ttl, before it may end any session: see
runner/server/services/sessions.py). When the server answers that the session is
gone (404: it expired, or the server lost it), a new one is opened and
``on_renewed(old, new)`` lets the reporter say again, under the new session, which
jobs still run here (runner/server/services/reports.py decides what that may do).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from runner.client import Client
from runner.client.errors import APIError, AuthError, NotFound, ToluError, TransportError
from runner.models import AcquireSpec, Job, Session

log = logging.getLogger("runner.launcher")

#: first wait after a failed heartbeat or session create; doubled up to the heartbeat period.
BACKOFF_SEC = 0.5


class SessionGone(RuntimeError):
    """The launcher cannot have a session any more (its site is gone, its credentials refused)."""


class LauncherSession:
    """One launcher's session: create, heartbeat in the background, acquire, renew, end."""

    def __init__(
        self,
        client: Client,
        site_id: int,
        *,
        batch_job_id: int | None = None,
        heartbeat_sec: float = 10.0,
        on_renewed: Callable[[int, int], None] | None = None,
        on_fatal: Callable[[str], None] | None = None,
        on_opened: Callable[[int], None] | None = None,
    ) -> None:
        self.client = client
        self.site_id = site_id
        self.batch_job_id = batch_job_id
        self.heartbeat_sec = heartbeat_sec
        self.on_renewed = on_renewed
        self.on_fatal = on_fatal
        self.on_opened = on_opened
        self.session: Session | None = None
        self.renewals = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._lost: int | None = None

    @property
    def id(self) -> int:
        session = self.session
        if session is None:
            raise RuntimeError("session not started")
        return session.id

    @property
    def ttl_sec(self) -> float:
        # The session expires after three missed heartbeats.
        return 3 * self.heartbeat_sec

    def start(self) -> Session:
        """Open the first session (errors go to the caller: the launcher cannot start)."""
        self.session = self.client.sessions.create(
            self.site_id, batch_job_id=self.batch_job_id, ttl_sec=self.ttl_sec
        )
        self._thread = threading.Thread(target=self._beat, name="tolu-heartbeat", daemon=True)
        self._thread.start()
        log.info("session %d opened (heartbeat every %.1f s)", self.session.id, self.heartbeat_sec)
        return self.session

    def lost(self, session_id: int) -> None:
        """Someone got 404 for ``session_id``: open a new one if it is the current one."""
        with self._lock:
            if self.session is not None and self.session.id == session_id:
                self._lost = session_id
        self._wake.set()

    def _beat(self) -> None:
        # its own connection pool and few retries: this loop keeps trying with its own backoff
        client = self.client.clone(retries=2)
        failures = 0
        wait = self.heartbeat_sec
        try:
            while True:
                self._wake.wait(wait)
                self._wake.clear()
                if self._stop.is_set():
                    return
                try:
                    if self._lost is not None:
                        self._renew(client)
                    client.sessions.heartbeat(self.id)
                    if failures:
                        log.info("heartbeat works again after %d failed tries", failures)
                    failures, wait = 0, self.heartbeat_sec
                except NotFound:
                    log.warning("session %d is gone on the server: opening a new one", self.id)
                    self._lost = self.id
                    wait = 0.0
                except AuthError as exc:
                    # the client renewed its credential once already (runner.client.auth)
                    self._fatal(f"the server refuses the launcher's credentials: {exc}")
                    return
                except SessionGone as exc:
                    self._fatal(str(exc))
                    return
                except (TransportError, APIError, ToluError) as exc:
                    failures += 1
                    if failures == 1 or failures % 10 == 0:
                        log.warning("heartbeat failed (%d in a row), trying again: %s", failures, exc)
                    wait = min(self.heartbeat_sec, BACKOFF_SEC * 2 ** min(failures, 8))
        finally:
            client.close()

    def _renew(self, client: Client) -> None:
        """A new session for the lost one (raises ToluError to be tried again later)."""
        old = self._lost
        try:
            session = client.sessions.create(
                self.site_id, batch_job_id=self.batch_job_id, ttl_sec=self.ttl_sec
            )
        except NotFound as exc:
            raise SessionGone(f"cannot open a new session: {exc}") from None
        with self._lock:
            self.session = session
            self._lost = None
            self.renewals += 1
        log.info("session %s lost; session %d opened in its place", old, session.id)
        if self.on_opened is not None:
            self.on_opened(session.id)
        if self.on_renewed is not None and old is not None:
            self.on_renewed(old, session.id)

    def _fatal(self, reason: str) -> None:
        log.error("%s", reason)
        if self.on_fatal is not None:
            self.on_fatal(reason)

    def acquire(self, spec: AcquireSpec) -> list[Job]:
        sid = self.id
        started = time.perf_counter()
        try:
            jobs = self.client.sessions.acquire(sid, spec)
        except NotFound:
            self.lost(sid)
            raise
        if jobs:
            log.debug("acquired %d jobs in %.3f s", len(jobs), time.perf_counter() - started)
        return jobs

    def stop_heartbeat(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def close(self, *, once: bool = False) -> None:
        """End the session: the server releases held jobs (RUNNING ones go RUN_TIMEOUT).
        ``once``: one try, no retries (the server has been away; if it still is, the
        session expires there after its TTL, as a dead launcher's does)."""
        self.stop_heartbeat()
        if self.session is not None:
            client = self.client.clone(retries=0) if once else self.client
            try:
                client.sessions.delete(self.session.id)
            except (APIError, TransportError) as exc:
                log.warning("could not end session %d: %s", self.session.id, exc)
            finally:
                if client is not self.client:
                    client.close()
            log.info("session %d closed", self.session.id)
