"""The scheduler service: submits, tracks and cancels the site's BatchJobs.

Each round (``run_once``):

1. BatchJobs in ``pending_submission`` get a batch script rendered from the
   scheduler's template (``SITE/batch/batchjob-<id>.sh``) that runs the launcher,
   and are submitted; the scheduler's refusal makes them ``submit_failed`` with the
   reason, a scheduler that does not answer leaves them for the next round.
2. BatchJobs in ``pending_deletion`` are cancelled (once); never-submitted ones end.
3. At most every ``scheduler.poll_interval_sec``, ONE status call asks about all
   tracked jobs; changed states, start and end times go back in ONE bulk PATCH.
   A job that left the queue is resolved by the scheduler class (history, exit-code
   file), never left running.
"""

from __future__ import annotations

import shutil
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from runner.interpreter import module_command
from runner.models import BatchJob, BatchJobUpdate
from runner.platform.schedulers import (
    BatchScheduler,
    SchedulerStatus,
    SchedulerUnavailable,
    SubmitError,
    UnsafeValue,
    create,
)
from runner.site.service import Service, SiteContext, register_service
from runner.states import BATCH_FINAL, BATCH_TRANSITIONS, BatchJobState

B = BatchJobState
#: states in which the scheduler is asked about a job.
TRACKED = (B.QUEUED, B.RUNNING, B.UNKNOWN, B.PENDING_DELETION)
#: states this service reads each round.
ACTIVE = (B.PENDING_SUBMISSION, *TRACKED)


def tolu_command() -> list[str]:
    """How a batch script starts ``tolu``: the ``tolu`` next to this Python, else ``python -P -m``."""
    beside = Path(sys.executable).parent / "tolu"
    if beside.exists():
        return [str(beside)]
    found = shutil.which("tolu")
    if found and Path(found).parent == Path(sys.executable).parent:
        return [found]
    return module_command("runner.cli.main")


def launcher_argv(site_dir: Path, batch_job: BatchJob) -> list[str]:
    """The launcher command a batch job runs (H5's ``tolu launcher`` CLI)."""
    argv = [
        *tolu_command(), "launcher",
        "--site", str(site_dir.resolve()),
        "--mode", batch_job.job_mode.value,
        "--batch-job-id", str(batch_job.id),
        "--wall-time-min", str(batch_job.wall_time_min),
    ]
    for key, value in sorted(batch_job.filter_tags.items()):
        argv += ["--tag", f"{key}={value}"]
    return argv


def next_state(current: BatchJobState, reported: BatchJobState) -> BatchJobState | None:
    """The state to record, or None to keep ``current``.

    A job asked deleted stays ``pending_deletion`` until it ends, and then is
    ``finished`` (it ended as asked, however the scheduler words it). Moves the
    life cycle forbids (e.g. running -> queued after a requeue) are not recorded.
    """
    if current is B.PENDING_DELETION:
        return B.FINISHED if reported in BATCH_FINAL else None
    if reported is current or reported not in BATCH_TRANSITIONS[current]:
        return None
    return reported


@register_service("scheduler")
class SchedulerService(Service):
    def __init__(self, ctx: SiteContext, *, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(ctx)
        self.settings = ctx.settings.scheduler
        # Submissions and cancellations are handled every round; status polls are rate-limited.
        self.period_sec = min(self.settings.poll_interval_sec, 2.0)
        self.clock = clock
        self._last_poll: float | None = None
        self._cancelled: set[int] = set()
        self._scheduler: BatchScheduler | None = None

    @property
    def scheduler(self) -> BatchScheduler:
        if self._scheduler is None:
            self._scheduler = create(self.settings.name, self.ctx.batch_dir)
        return self._scheduler

    def run_once(self) -> None:
        client = self.ctx.client
        batch_jobs = client.batch_jobs.filter(site_id=self.ctx.site_id, state=ACTIVE)
        updates: dict[int, dict[str, Any]] = {}
        for bj in batch_jobs:
            if bj.state is B.PENDING_SUBMISSION:
                self._submit(bj, updates)
            elif bj.state is B.PENDING_DELETION:
                self._cancel(bj, updates)
        tracked = [bj for bj in batch_jobs
                   if bj.state in TRACKED and bj.scheduler_id and bj.id not in updates]
        if tracked and self._poll_due():
            self._sync(tracked, updates)
        if updates:
            client.batch_jobs.bulk_update([BatchJobUpdate(id=i, **u) for i, u in updates.items()])

    # ------------------------------------------------------------ steps

    def _submit(self, bj: BatchJob, updates: dict[int, dict[str, Any]]) -> None:
        try:
            script = self.scheduler.write_script(bj, launcher_argv(self.ctx.site_dir, bj), self.settings)
            scheduler_id = self.scheduler.submit(script)
        except SchedulerUnavailable as exc:
            self.log.warning("batch job %s not submitted yet (will retry): %s", bj.id, exc)
            return
        except (SubmitError, UnsafeValue, OSError) as exc:
            self.log.error("batch job %s: submit failed: %s", bj.id, exc)
            updates[bj.id] = {"state": B.SUBMIT_FAILED, "status_info": {**bj.status_info, "error": str(exc)}}
            return
        self.log.info("batch job %s submitted to %s as %s (%d node(s), %d min)", bj.id, self.scheduler.name,
                      scheduler_id, bj.num_nodes, bj.wall_time_min)
        updates[bj.id] = {
            "state": B.QUEUED,
            "scheduler_id": scheduler_id,
            "status_info": {**bj.status_info, "script": str(script), "submitted_at": _now()},
        }

    def _cancel(self, bj: BatchJob, updates: dict[int, dict[str, Any]]) -> None:
        if not bj.scheduler_id:
            updates[bj.id] = {"state": B.FINISHED, "end_time": datetime.now(UTC),
                              "status_info": {**bj.status_info, "reason": "deleted before submission"}}
            return
        if bj.id in self._cancelled or bj.status_info.get("cancel_requested_at"):
            return
        try:
            self.scheduler.cancel(bj.scheduler_id)
        except SchedulerUnavailable as exc:
            self.log.warning("batch job %s (%s): cancel not possible yet: %s", bj.id, bj.scheduler_id, exc)
            return
        self._cancelled.add(bj.id)
        self._last_poll = None  # look again soon: the job should end now
        self.log.info("batch job %s (%s): cancel requested", bj.id, bj.scheduler_id)
        updates[bj.id] = {"status_info": {**bj.status_info, "cancel_requested_at": _now()}}

    def _poll_due(self) -> bool:
        now = self.clock()
        if self._last_poll is not None and now - self._last_poll < self.settings.poll_interval_sec:
            return False
        self._last_poll = now
        return True

    def _sync(self, tracked: list[BatchJob], updates: dict[int, dict[str, Any]]) -> None:
        by_sched = {bj.scheduler_id: bj for bj in tracked if bj.scheduler_id}
        try:
            statuses = self.scheduler.status(list(by_sched))
        except SchedulerUnavailable as exc:
            self.log.warning("status poll failed (will retry): %s", exc)
            return
        for scheduler_id, status in statuses.items():
            bj = by_sched.get(scheduler_id)
            if bj is not None:
                change = self._change(bj, status)
                if change:
                    updates[bj.id] = change

    def _change(self, bj: BatchJob, status: SchedulerStatus) -> dict[str, Any]:
        change: dict[str, Any] = {}
        state = next_state(bj.state, status.state)
        if state is not None:
            change["state"] = state
            if state in BATCH_FINAL or state is B.RUNNING:
                self.log.info("batch job %s (%s): %s -> %s %s", bj.id, bj.scheduler_id, bj.state.value,
                              state.value, status.reason)
        if status.start_time and bj.start_time is None:
            change["start_time"] = status.start_time
        final = (state or bj.state) in BATCH_FINAL
        if final and bj.end_time is None:
            change["end_time"] = status.end_time or datetime.now(UTC)
        info = {**bj.status_info, **status.info()}
        if info != bj.status_info:
            change["status_info"] = info
        return change


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
