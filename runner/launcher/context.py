"""One launcher run's site, server connection and session, and how it reports jobs.

The engine (serial mode, MPI mode) reports through ``ctx.sink`` (runner/launcher/sink.py);
the session, the reporter and the journal behind it ride out outages of any length
(docs/launcher.md, "Outages"). Why the launcher stopped is ``stop_reason``, and its exit
code ``exit_code``: 0 when it stopped because it was idle (the work is done), out of
time, or asked to (SIGTERM, SIGINT: how schedulers end an allocation); otherwise 1,
and the CLI prints the reason in one line.
"""

from __future__ import annotations

import logging
import math
import signal
import time
from pathlib import Path
from types import FrameType

from runner.client import Client
from runner.client.errors import ToluError
from runner.launcher import journal as journals
from runner.launcher import leftovers
from runner.launcher.journal import Journal
from runner.launcher.options import LauncherError, LauncherOptions
from runner.launcher.reporter import Reporter
from runner.launcher.session import LauncherSession
from runner.launcher.sink import OutcomeSink
from runner.launcher.tasks import Task, TaskError, TaskFactory
from runner.models import App, Job
from runner.site import settings as site_settings

log = logging.getLogger("runner.launcher")

#: minutes kept free at the end of the allocation when acquiring (start-up, reporting).
WALL_TIME_MARGIN_MIN = 0.5
#: how long a stopping launcher keeps trying to send its last reports (then the
#: journal keeps them for the next launcher of the site, and it exits non-zero).
FINAL_REPORT_SEC = 30.0
#: exit codes: 0 done (idle), out of time or asked to stop; 1 any other reason.
EXIT_OK = 0
EXIT_FAILED = 1


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
        wait = opts.server_wait_sec
        #: holding nothing, stop once the server has been away this long (docs/launcher.md)
        self.server_wait_sec = self.settings.launcher.server_wait_sec if wait is None else wait
        self.filter_tags = dict(opts.tags)
        self.stop_reason = ""
        self.exit_code = EXIT_OK
        #: the launcher stops because the server has been away (Fetcher.stop_if_server_gone):
        #: the requests of its shutdown are tried once, not retried for seconds each
        self.server_away = False
        self.apps: dict[int, App] = {}
        self.factory = TaskFactory(self.site_dir / "data", self.apps)
        ls = self.settings.launcher
        self.session = LauncherSession(
            self.client,
            self.site_id,
            batch_job_id=opts.batch_job_id,
            heartbeat_sec=ls.heartbeat_sec,
            on_fatal=lambda reason: self.request_stop(reason, EXIT_FAILED),
        )
        self.journal = Journal(self.site_dir, site_id=site_id)
        self.reporter = Reporter(
            self.client, self.session, self.journal, interval_sec=ls.report_interval_sec,
        )
        self.sink = OutcomeSink(self.reporter, stop_reason=lambda: self.stop_reason)
        self.reporter.on_moot = self.sink.on_moot
        self.session.on_renewed = self.sink.renewed
        self.session.on_opened = self.journal.note_session

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
        """Connect: the batch job's tags, the apps, the journal, the session; then send
        what dead launchers of this site left unreported in their journals."""
        if self.opts.batch_job_id is not None:
            batch_job = self.client.batch_jobs.get(self.opts.batch_job_id)
            self.filter_tags = {**batch_job.filter_tags, **self.filter_tags}
        self.refresh_apps()
        try:
            self.journal.open()
        except journals.JournalError as exc:
            raise LauncherError(str(exc)) from None
        session = self.session.start()
        self.journal.note_session(session.id)
        self.reporter.start()
        self._take_over_orphans()

    def _take_over_orphans(self) -> None:
        for orphan in journals.orphans(self.site_dir, self.journal):
            adopted = self.journal.adopt(orphan.entries)
            self.reporter.add_entries(adopted)
            log.info(
                "journal %s of a launcher that is gone (pid %s on %s): %d report(s) to send",
                orphan.path.name, orphan.header.get("pid"), orphan.header.get("host"), len(adopted),
            )
            orphan.release(remove=True)
            mark = orphan.header.get("mark")
            # its tasks' own children outlive it: gone before its jobs can run again
            if orphan.same_host and isinstance(mark, str) and mark and (killed := leftovers.kill(mark)):
                log.info("killed %d process(es) the launcher that is gone left running", len(killed))
            if adopted and not self.reporter.flush():
                continue  # sent later; its sessions expire by themselves
            for sid in orphan.sessions:
                # its jobs are released at once instead of after the ttl: their
                # processes died with their launcher (same host, pid gone)
                if sid != self.session.id and orphan.same_host:
                    try:
                        self.client.sessions.delete(sid)
                        log.info("ended session %d of the launcher that is gone", sid)
                    except ToluError:
                        pass

    def close(self) -> None:
        """Send the last reports (for at most FINAL_REPORT_SEC), end the session, close the
        journal (kept when reports are left: the next launcher sends them)."""
        self.session.stop_heartbeat()
        left = self.reporter.close(FINAL_REPORT_SEC)
        if left:
            self.request_stop(
                f"{left} status report(s) could not be sent; {self.journal.path} keeps them "
                "for the next launcher of this site", EXIT_FAILED,
            )
            self.exit_code = EXIT_FAILED
        else:
            self.session.close(once=self.server_away)
        self.journal.close()
        self.client.close()
        self._write_ending()

    def _write_ending(self) -> None:
        """Leave ``code<TAB>reason`` where the CLI reads it (serial mode's rank 0 is another
        process: its reason would otherwise stay in its log)."""
        if not self.opts.exit_file:
            return
        try:
            Path(self.opts.exit_file).write_text(f"{self.exit_code}\t{self.stop_reason or 'finished'}\n")
        except OSError as exc:
            log.warning("cannot write %s: %s", self.opts.exit_file, exc)

    def request_stop(self, reason: str, code: int = EXIT_OK) -> None:
        """Stop for ``reason``; the first reason stays, a later failure still fails the exit."""
        if not self.stop_reason:
            log.info("stopping: %s", reason)
            self.stop_reason = reason
            self.exit_code = code
        elif code != EXIT_OK and self.exit_code == EXIT_OK:
            log.error("%s", reason)
            self.stop_reason = reason
            self.exit_code = code

    def install_signals(self, wake_fd: int | None = None) -> None:
        def handler(signum: int, frame: FrameType | None) -> None:
            # a requested stop (the scheduler ending the allocation, scancel, a user), not a failure
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

        A job whose run in this very attempt succeeded without being reported (the
        launcher died) is not run again: the spawner finds the note in its workdir and
        reports it recovered (runner/launcher/workdir.py, lost_success)."""
        if any(j.app_id not in self.apps for j in jobs):
            self.refresh_apps()
        session_id = self.session.id
        # a job of ours that a lost session let go and that we acquired again: it
        # still runs here (its RUNNING report under the new session reclaims it)
        jobs = [j for j in jobs if not self.sink.rehold(j.id, session_id)]
        tasks = []
        for job in jobs:
            self.sink.hold(job, session_id)
            try:
                tasks.append(self.factory.make(job, session_id))
            except (TaskError, OSError) as exc:
                self.fail(job.id, f"cannot build the command: {exc}")
        return tasks

    def fail(self, job_id: int, reason: str) -> None:
        log.warning("job %d failed before starting: %s", job_id, reason)
        self.sink.failed(job_id, reason)
