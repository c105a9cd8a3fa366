"""What both launcher modes share: options, site, apps, session, outcome reporting."""

from __future__ import annotations

import logging
import math
import os
import signal
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from runner.client import Client
from runner.client.errors import ToluError
from runner.launcher.procs import Exit
from runner.launcher.session import LauncherSession, Reporter
from runner.launcher.tasks import Task, TaskError, TaskFactory, read_result, record_success, recovered_exit
from runner.models import AcquireSpec, App, AppKind, Job
from runner.site import settings as site_settings
from runner.states import JobState

log = logging.getLogger("runner.launcher")

#: minutes kept free at the end of the allocation when acquiring (start-up, reporting).
WALL_TIME_MARGIN_MIN = 0.5
#: seconds between acquire attempts while the server has nothing for us.
IDLE_ACQUIRE_SEC = 1.0


class LauncherError(RuntimeError):
    """A launcher that cannot start: bad site, not logged in, site not registered."""


@dataclass
class LauncherOptions:
    site_dir: Path
    mode: str = "mpi"
    batch_job_id: int | None = None
    #: the launcher's own wall time (minutes); None: no limit.
    wall_time_min: float | None = None
    hostfile: str | None = None
    #: stop after this many seconds with nothing running and nothing to acquire;
    #: None: the site setting ``launcher.idle_timeout_sec`` (0 there: never).
    max_idle_sec: float | None = None
    tags: dict[str, str] = field(default_factory=dict)
    #: serial mode: the interpreter running each rank.
    python: str = ""


@dataclass(frozen=True)
class Outcome:
    """How one task ended, as a worker reports it (picklable, no Job attached)."""

    job_id: int
    returncode: int | None
    started: float
    ended: float
    timed_out: bool = False
    stopped: bool = False
    error: str = ""
    tail: str = ""
    result: dict[str, Any] = field(default_factory=dict)
    #: reported from an earlier session's note, not run again (see tasks.record_success).
    recovered: bool = False


def exit_outcome(ex: Exit, task: Task) -> Outcome:
    """How ``task`` ended when its process exited; a clean exit is noted in the workdir first
    (``record_success``), so a launcher that dies before its report does not run it again."""
    failed = ex.returncode != 0 or ex.timed_out or ex.stopped
    if not failed:
        record_success(task, ex.started, ex.ended)
    return Outcome(
        job_id=ex.key,
        returncode=ex.returncode,
        started=ex.started,
        ended=ex.ended,
        timed_out=ex.timed_out,
        stopped=ex.stopped,
        tail=ex.output_tail() if failed else "",
        result=read_result(task),
    )


def setup_logging(site_dir: Path, name: str | None = None) -> Path:
    log_dir = site_dir / "log"
    log_dir.mkdir(parents=True, exist_ok=True)
    path = log_dir / (name or f"launcher-{os.getpid()}.log")
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger("runner")
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    return path


class Context:
    """The site, the server connection and the session of one launcher run."""

    def __init__(
        self, opts: LauncherOptions, *, settings: site_settings.SiteSettings, site_id: int, client: Client
    ) -> None:
        self.opts = opts
        self.site_dir = opts.site_dir.resolve()
        self.settings = settings
        self.site_id = site_id
        self.client = client
        self.started = time.time()
        self.deadline = (
            self.started + opts.wall_time_min * 60 if opts.wall_time_min and opts.wall_time_min > 0 else None
        )
        idle = opts.max_idle_sec if opts.max_idle_sec is not None else self.settings.launcher.idle_timeout_sec
        self.max_idle_sec = idle if idle > 0 else None
        self.filter_tags = dict(opts.tags)
        self.stop_reason = ""
        self.apps: dict[int, App] = {}
        self.factory = TaskFactory(self.site_dir / "data", self.apps)
        ls = self.settings.launcher
        self.session = LauncherSession(
            self.client,
            self.site_id,
            batch_job_id=opts.batch_job_id,
            heartbeat_sec=ls.heartbeat_sec,
            on_lost=self.request_stop,
        )
        self.reporter = Reporter(self.client, ls.report_interval_sec)
        self.held: dict[int, Job] = {}

    @classmethod
    def load(cls, opts: LauncherOptions, client: Client | None = None) -> Context:
        """Read the site's settings and the saved credentials (no request yet)."""
        site_dir = opts.site_dir.resolve()
        try:
            settings = site_settings.load(site_dir)
        except site_settings.SettingsError as exc:
            raise LauncherError(str(exc)) from None
        if settings.site_id is None:
            raise LauncherError(
                f"{site_dir}/settings.yml has no site_id: register the site with `tolu site init`"
            )
        return cls(opts, settings=settings, site_id=settings.site_id, client=client or Client.from_config())

    # ------------------------------------------------------------ life

    def open(self) -> None:
        if self.opts.batch_job_id is not None:
            batch_job = self.client.batch_jobs.get(self.opts.batch_job_id)
            self.filter_tags = {**batch_job.filter_tags, **self.filter_tags}
        self.refresh_apps()
        self.session.start()
        self.reporter.start()

    def close(self) -> None:
        self.reporter.close()
        self.session.close()
        self.client.close()

    def request_stop(self, reason: str) -> None:
        if not self.stop_reason:
            log.info("stopping: %s", reason)
            self.stop_reason = reason

    def install_signals(self, wake_fd: int | None = None) -> None:
        def handler(signum: int, frame: FrameType | None) -> None:
            self.request_stop(f"received {signal.Signals(signum).name}")

        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGINT, handler)
        if wake_fd is not None:
            signal.set_wakeup_fd(wake_fd, warn_on_full_buffer=False)

    # ------------------------------------------------------------ time

    def remaining_min(self) -> float | None:
        if self.deadline is None:
            return None
        return (self.deadline - time.time()) / 60

    def out_of_time(self) -> bool:
        return self.deadline is not None and time.time() >= self.deadline

    def acquire_wall_time(self) -> float | None:
        """``max_wall_time_min`` for acquiring: what is left of the allocation, less a margin
        (start-up and reporting; a tenth of the wall time, at most WALL_TIME_MARGIN_MIN)."""
        left = self.remaining_min()
        if left is None or self.opts.wall_time_min is None:
            return None
        margin = min(WALL_TIME_MARGIN_MIN, 0.1 * self.opts.wall_time_min)
        # never 0: the server reads 0 as "no limit"
        return max(0.001, math.floor((left - margin) * 1000) / 1000)

    # ------------------------------------------------------------ jobs

    def refresh_apps(self) -> None:
        for app in self.client.apps.filter(site_id=self.site_id):
            self.apps[app.id] = app
        self.factory.apps = self.apps

    def make_tasks(self, jobs: list[Job]) -> list[Task]:
        """Tasks for newly acquired jobs; a job that cannot become one is FAILED with the reason."""
        if any(j.app_id not in self.apps for j in jobs):
            self.refresh_apps()
        tasks = []
        session_id = self.session.id
        for job in jobs:
            self.held[job.id] = job
            if self._recover(job, session_id):
                continue
            try:
                tasks.append(self.factory.make(job, session_id))
            except (TaskError, OSError) as exc:
                self.fail(job.id, f"cannot build the command: {exc}")
        return tasks

    def _recover(self, job: Job, session_id: int) -> bool:
        try:
            workdir = self.factory.workdir(job)
        except TaskError:
            return False
        record = recovered_exit(workdir, job, session_id)
        if record is None:
            return False
        log.info(
            "job %d succeeded under session %s before that launcher died: reporting it, not running it again",
            job.id,
            record.get("session_id"),
        )
        app = self.apps.get(job.app_id)
        result = {}
        if app is not None and app.kind is AppKind.PYTHON:
            result = read_result(Task(job_id=job.id, argv=[], workdir=str(workdir), python=True))
        started, ended = float(record["started"]), float(record["ended"])
        self.report_started(job.id, started)
        self.report_outcome(Outcome(job.id, 0, started, ended, result=result, recovered=True))
        return True

    def fail(self, job_id: int, reason: str) -> None:
        log.warning("job %d failed before starting: %s", job_id, reason)
        self.held.pop(job_id, None)
        self.reporter.update(job_id, JobState.FAILED, time.time(), state_data={"reason": reason})

    def report_started(self, job_id: int, when: float) -> None:
        job = self.held.get(job_id)
        if job is not None and job.state is not JobState.RUNNING:
            self.reporter.update(job_id, JobState.RUNNING, when)

    def report_outcome(self, o: Outcome) -> None:
        job = self.held.pop(o.job_id, None)
        # the job's data is replaced as a whole, so keep what it held
        extra: dict[str, Any] = {"data": {**(job.data if job else {}), **o.result}} if o.result else {}
        if o.error:
            self.reporter.update(
                o.job_id, JobState.RUN_ERROR, o.ended, state_data={"error": o.error}, **extra
            )
        elif o.timed_out or o.stopped:
            wall = job.wall_time_min if job else 0
            reason = f"job wall time {wall:g} min exceeded" if o.timed_out else (
                f"launcher stopped ({self.stop_reason or 'shutdown'})"
            )
            self.reporter.update(
                o.job_id,
                JobState.RUN_TIMEOUT,
                o.ended,
                state_data={"reason": reason, "tail": o.tail},
                return_code=o.returncode,
                **extra,
            )
        elif o.returncode == 0:
            note = {"state_data": {"recovered": "finished before its launcher died"}} if o.recovered else {}
            self.reporter.update(o.job_id, JobState.RUN_DONE, o.ended, return_code=0, **extra, **note)
        else:
            self.reporter.update(
                o.job_id,
                JobState.RUN_ERROR,
                o.ended,
                return_code=o.returncode,
                state_data={"return_code": o.returncode, "tail": o.tail},
                **extra,
            )


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
        self._closed = False
        #: no new request before this time (the server had nothing last time).
        self.quiet_until = 0.0
        self.last_count = 0
        #: seconds one acquire takes (moving average): how far ahead the loop must ask.
        self.latency = 0.05
        self._thread = threading.Thread(target=self._loop, name="tolu-fetcher", daemon=True)

    def start(self) -> None:
        self._thread.start()

    @property
    def busy(self) -> bool:
        return self._busy

    def can_request(self) -> bool:
        return not self._busy and time.time() >= self.quiet_until

    def request(self, spec: AcquireSpec) -> None:
        with self._cv:
            if self._busy:
                return
            self._busy = True
            self._spec = spec
            self._cv.notify()

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
            try:
                jobs = self.ctx.session.acquire(spec)
                self.latency = 0.7 * self.latency + 0.3 * (time.perf_counter() - t0)
                if jobs:
                    log.info("acquired %d job(s)", len(jobs))
                    tasks = self.ctx.make_tasks(jobs)
                self.last_count = len(jobs)
                # nothing now: ask again a little later, not in a tight loop
                self.quiet_until = 0.0 if jobs else time.time() + IDLE_ACQUIRE_SEC
            except ToluError as exc:
                log.warning("acquire failed: %s", exc)
                self.quiet_until = time.time() + IDLE_ACQUIRE_SEC
            except Exception:  # never let the fetching thread die with a request in flight
                log.exception("acquire failed")
                self.quiet_until = time.time() + IDLE_ACQUIRE_SEC
            with self._cv:
                self._results.extend(tasks)
                self._busy = False
            if self.on_ready is not None:
                self.on_ready()

    def close(self) -> None:
        with self._cv:
            self._closed = True
            self._cv.notify()
        if self._thread.is_alive():
            self._thread.join(timeout=60)


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


#: seconds of work (at the current finishing rate) held beyond what runs, at least.
AHEAD_SEC = 1.0


def ahead(rate: float, latency: float, floor: float) -> float:
    """How much to hold beyond what runs: a second's worth of work or four acquire
    round trips, whichever is more, and at least ``floor``. The loops ask again only
    when half of it is used up, so each acquire brings a batch, not a job or two."""
    return max(floor, rate * max(AHEAD_SEC, 4 * latency))
