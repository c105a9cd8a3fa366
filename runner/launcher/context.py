"""One launcher run's site, server connection and session, and how it reports jobs."""

from __future__ import annotations

import logging
import math
import signal
import time
from types import FrameType
from typing import Any

from runner.client import Client
from runner.launcher.options import LauncherError, LauncherOptions
from runner.launcher.outcome import Outcome
from runner.launcher.session import LauncherSession, Reporter
from runner.launcher.tasks import Task, TaskError, TaskFactory
from runner.models import App, Job
from runner.site import settings as site_settings
from runner.states import JobState

log = logging.getLogger("runner.launcher")

#: minutes kept free at the end of the allocation when acquiring (start-up, reporting).
WALL_TIME_MARGIN_MIN = 0.5


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
        client = client or Client.for_site(site_dir)  # the site's token, else the user's login
        return cls(opts, settings=settings, site_id=settings.site_id, client=client)

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
        """Tasks for newly acquired jobs; a job that cannot become one is FAILED with the reason.

        A job whose earlier run succeeded without being reported (the launcher died) is
        not run again: the spawner finds the note in its workdir and reports it
        recovered (runner/launcher/workdir.py, lost_success)."""
        if any(j.app_id not in self.apps for j in jobs):
            self.refresh_apps()
        tasks = []
        session_id = self.session.id
        for job in jobs:
            self.held[job.id] = job
            try:
                tasks.append(self.factory.make(job, session_id))
            except (TaskError, OSError) as exc:
                self.fail(job.id, f"cannot build the command: {exc}")
        return tasks

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
