"""``OutcomeSink``: where the execution engine says what happened to the jobs it runs.

The engine (serial mode, MPI mode: how tasks are spawned, waited for and batched)
calls only this; how the news reaches the server is not its business:

- ``hold(job, session_id)``: the fetcher acquired ``job`` under that session;
- ``starting(job_id)``: the task's process is about to be started (any thread, e.g.
  the spawner's, right before exec): its RUNNING is journaled before it exists, so a
  launcher killed a moment later still leaves it (a later ``started`` adds nothing);
- ``started(job_id, t)``: the task's process exists (a real start, at time ``t``);
- ``done(outcome)``: the task ended (runner/launcher/outcome.py);
- ``failed(job_id, reason)``: the job cannot run here and never started;
- ``returned(job_id)``: given back unstarted (the session's end releases it);
- ``report(started=..., done=..., failed=..., returned=...)``: all of these for a
  whole batch at once (one journal write);
- ``revoked()``: jobs whose run the server no longer recognizes (taken by another
  session after this launcher's session was lost): the engine should stop them.

Each call becomes reports (a ``JobReport``'s JSON, tied to the attempt the job was
acquired in: ``journal.report``) that the reporter journals at once and sends in
batches (runner/launcher/reporter.py). A task whose start and end come in one batch
is one report: its outcome, carrying the start (``run_started``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from runner.launcher.journal import Report, report
from runner.launcher.outcome import Outcome
from runner.launcher.reporter import Reporter
from runner.models import Job, MootReport
from runner.states import JobState

S = JobState


def ts(t: float) -> datetime:
    return datetime.fromtimestamp(t, tz=UTC)


@dataclass(slots=True)
class Held:
    """A job this launcher holds: as acquired, under which session, since when it runs."""

    job: Job
    session_id: int
    started: float | None = None
    #: its start goes with its outcome (``JobReport.run_started``), not in a RUNNING of its own
    start_unsaid: bool = False


class OutcomeSink:
    """Turns what the engine saw into reports (see the module)."""

    def __init__(self, reporter: Reporter, *, stop_reason: Callable[[], str] = lambda: "") -> None:
        self.reporter = reporter
        self.stop_reason = stop_reason
        self._held: dict[int, Held] = {}
        self._revoked: set[int] = set()
        self._lock = threading.Lock()

    # ------------------------------------------------------------ the engine's calls

    def hold(self, job: Job, session_id: int) -> None:
        with self._lock:
            self._held[job.id] = Held(job, session_id)

    def rehold(self, job_id: int, session_id: int) -> bool:
        """True if ``job_id`` runs here already (acquired again after a session was lost);
        it is now held under ``session_id``."""
        with self._lock:
            h = self._held.get(job_id)
            if h is None or h.started is None:
                return False
            h.session_id = session_id
            return True

    def starting(self, job_id: int) -> None:
        self.report(started=[(job_id, time.time())])

    def started(self, job_id: int, t: float) -> None:
        self.report(started=[(job_id, t)])

    def done(self, outcome: Outcome) -> None:
        self.report(done=[outcome])

    def failed(self, job_id: int, reason: str) -> None:
        self.report(failed=[(job_id, reason)])

    def returned(self, job_id: int) -> None:
        self.report(returned=[job_id])

    def report(
        self,
        *,
        started: Iterable[tuple[int, float]] = (),
        done: Iterable[Outcome] = (),
        failed: Iterable[tuple[int, str]] = (),
        returned: Iterable[int] = (),
    ) -> None:
        """A batch of news, in this order: starts, ends, failures to start, returns."""
        out: dict[int, list[Report]] = {}
        done = list(done)
        # a task that started and ended within the batch: its outcome carries the start
        ending = {o.job_id for o in done} if done else ()
        with self._lock:
            for job_id, t in started:
                h = self._held.get(job_id)
                if h is not None and h.started is None:
                    h.started = t
                    if job_id in ending:
                        h.start_unsaid = True
                    else:
                        out.setdefault(h.session_id, []).append(self._report(h, S.RUNNING, t))
            for o in done:
                h = self._held.pop(o.job_id, None)
                if h is not None:
                    self._revoked.discard(o.job_id)
                    out.setdefault(h.session_id, []).append(self._outcome(h, o))
            for job_id, reason in failed:
                h = self._held.pop(job_id, None)
                if h is not None:
                    out.setdefault(h.session_id, []).append(
                        self._report(h, S.FAILED, None, state_data={"reason": reason})
                    )
            for job_id in returned:
                self._held.pop(job_id, None)
            idle = not self._held
        for session_id, reports in out.items():
            self.reporter.add(session_id, reports)
        if out and idle:  # nothing more in hand: the last outcomes go now, not at the next tick
            self.reporter.wake()

    def revoked(self) -> set[int]:
        """Take the jobs the engine should stop: another launcher runs them now."""
        with self._lock:
            out, self._revoked = self._revoked, set()
            return out

    # ------------------------------------------------------------ the reporter's and session's calls

    def on_moot(self, moot: Sequence[MootReport]) -> None:
        with self._lock:
            for m in moot:
                h = self._held.get(m.id)
                if h is not None and h.started is not None and m.reason.startswith("held by session"):
                    self._revoked.add(m.id)

    def renewed(self, old: int, new: int) -> None:
        """The session was lost and ``new`` opened: the jobs still running here say so again
        under it (the server lets the new session hold them, or says who does now)."""
        reports = []
        with self._lock:
            for h in self._held.values():
                h.session_id = new
                if h.started is not None:
                    reports.append(self._report(h, S.RUNNING, h.started))
        if reports:
            self.reporter.add(new, reports)

    @property
    def running(self) -> int:
        with self._lock:
            return sum(1 for h in self._held.values() if h.started is not None)

    # ------------------------------------------------------------ reports

    @staticmethod
    def _report(h: Held, state: JobState, t: float | None, **fields: Any) -> Report:
        when = ts(t) if t is not None else datetime.now(UTC)
        return report(h.job.id, h.job.attempt, state, when, **fields)

    def _outcome(self, h: Held, o: Outcome) -> Report:
        job = h.job
        # the job's data is replaced as a whole, so keep what it held
        extra: dict[str, Any] = {"data": {**job.data, **o.result}} if o.result else {}
        if h.start_unsaid:
            assert h.started is not None
            extra["run_started"] = ts(h.started)
        if o.error:
            return self._report(h, S.RUN_ERROR, o.ended, state_data={"error": o.error}, **extra)
        if o.timed_out or o.stopped:
            reason = (
                f"job wall time {job.wall_time_min:g} min exceeded"
                if o.timed_out
                else f"launcher stopped ({self.stop_reason() or 'shutdown'})"
            )
            return self._report(
                h, S.RUN_TIMEOUT, o.ended, state_data={"reason": reason, "tail": o.tail},
                return_code=o.returncode, **extra,
            )
        if o.returncode == 0:
            note = {"state_data": {"recovered": "finished before its launcher died"}} if o.recovered else {}
            return self._report(h, S.RUN_DONE, o.ended, return_code=0, **extra, **note)
        return self._report(
            h, S.RUN_ERROR, o.ended, return_code=o.returncode,
            state_data={"return_code": o.returncode, "tail": o.tail}, **extra,
        )
