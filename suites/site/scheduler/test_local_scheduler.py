"""The scheduler service and queue maintainer on the ``local`` scheduler, with a real server
and H5's real launcher inside each batch job (detached processes on this machine)."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import psutil
import pytest
from sched_helpers import context, drive

from harness.fixtures_site import MakeJobs, SiteHandle
from runner.client import Client
from runner.site.queue_maintainer import QueueMaintainer
from runner.site.scheduler_service import SchedulerService
from runner.states import BatchJobState as B

LOCAL = {"name": "local", "poll_interval_sec": 0.5}

pytestmark = pytest.mark.usefixtures("reap_batch_jobs")


def _pid(site: SiteHandle, scheduler_id: str) -> int:
    return int((site.path / "batch" / f"{scheduler_id}.pid").read_text().split()[0])


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_submit_track_cancel(tolu_site: SiteHandle, tolu_client: Client) -> None:
    tolu_site.write_settings(scheduler=LOCAL, launcher={"idle_timeout_sec": 120})
    service = SchedulerService(context(tolu_site, tolu_client))
    bj = tolu_client.batch_jobs.create(site_id=tolu_site.id, num_nodes=1, wall_time_min=5, job_mode="serial")

    drive([service], lambda: tolu_client.batch_jobs.get(bj.id).state is B.RUNNING, what="running")
    running = tolu_client.batch_jobs.get(bj.id)
    assert running.scheduler_id and running.scheduler_id.startswith("local-")
    assert running.start_time is not None
    script = Path(running.status_info["script"])
    assert "launcher" in script.read_text() and f"--batch-job-id {bj.id}" in script.read_text()
    pid = _pid(tolu_site, running.scheduler_id)
    assert _alive(pid)

    tolu_client.batch_jobs.delete(bj.id)
    drive([service], lambda: tolu_client.batch_jobs.get(bj.id).state is B.FINISHED, what="cancelled")
    done = tolu_client.batch_jobs.get(bj.id)
    assert done.end_time is not None and "cancel_requested_at" in done.status_info
    assert not _alive(pid), "the batch script outlived its cancellation"


def test_refused_submission_is_submit_failed(tolu_site: SiteHandle, tolu_client: Client) -> None:
    tolu_site.write_settings(scheduler=LOCAL)
    service = SchedulerService(context(tolu_site, tolu_client))
    bj = tolu_client.batch_jobs.create(site_id=tolu_site.id, num_nodes=1, wall_time_min=5,
                                       options={"bad key; rm": "x"})
    service.run_once()
    failed = tolu_client.batch_jobs.get(bj.id)
    assert failed.state is B.SUBMIT_FAILED
    assert "option name" in failed.status_info["error"]


def test_vanished_job_is_resolved_not_left_running(tolu_site: SiteHandle, tolu_client: Client) -> None:
    """A batch job killed outright (no exit-code file) ends FAILED with the reason."""
    tolu_site.write_settings(scheduler=LOCAL, launcher={"idle_timeout_sec": 120})
    service = SchedulerService(context(tolu_site, tolu_client))
    bj = tolu_client.batch_jobs.create(site_id=tolu_site.id, num_nodes=1, wall_time_min=5, job_mode="serial")
    drive([service], lambda: tolu_client.batch_jobs.get(bj.id).state is B.RUNNING, what="running")
    scheduler_id = tolu_client.batch_jobs.get(bj.id).scheduler_id
    assert scheduler_id
    os.killpg(_pid(tolu_site, scheduler_id), signal.SIGKILL)
    drive([service], lambda: tolu_client.batch_jobs.get(bj.id).state is B.FAILED, what="resolved")
    gone = tolu_client.batch_jobs.get(bj.id)
    assert "without an exit code" in gone.status_info["reason"]
    assert gone.end_time is not None


def test_queue_maintainer_depth_1_runs_the_backlog(
    tolu_site: SiteHandle, tolu_client: Client, make_jobs: MakeJobs
) -> None:
    """Depth 1: one batch job at a time while jobs wait; all jobs finish; none asked after."""
    tolu_site.write_settings(
        scheduler=LOCAL,
        launcher={"idle_timeout_sec": 3},
        queue_maintainer={"enabled": True, "depth": 1, "num_nodes": 1, "wall_time_min": 5,
                          "job_mode": "serial", "poll_interval_sec": 0.5},
    )
    ctx = context(tolu_site, tolu_client)
    maintainer, scheduler = QueueMaintainer(ctx), SchedulerService(ctx)

    maintainer.run_once()
    assert tolu_client.batch_jobs.filter(site_id=tolu_site.id) == [], "asked for a batch job with no work"

    jobs = make_jobs("hello", 20)
    in_flight_max = 0

    def check_depth() -> None:
        nonlocal in_flight_max
        active = tolu_client.batch_jobs.filter(site_id=tolu_site.id, state=["pending_submission", "queued",
                                                                            "running", "unknown"])
        in_flight_max = max(in_flight_max, len(active))
        assert len(active) <= 1, f"depth 1 but {len(active)} batch jobs in flight"

    def all_finished() -> bool:
        states = {j.state.value for j in tolu_client.jobs.filter(id=[j.id for j in jobs])}
        return states == {"JOB_FINISHED"}

    drive([maintainer, scheduler], all_finished, timeout=120, pause=0.5, each=check_depth, what="20 jobs")
    assert in_flight_max == 1
    # with the backlog empty the launcher idles out, its batch job ends, and nothing new is asked
    drive([maintainer, scheduler],
          lambda: all(b.state is B.FINISHED for b in tolu_client.batch_jobs.filter(site_id=tolu_site.id)),
          timeout=60, what="the batch job to end after its launcher idled out")
    batch_jobs = tolu_client.batch_jobs.filter(site_id=tolu_site.id)
    finished = tolu_client.jobs.filter(id=[j.id for j in jobs])
    assert {j.batch_job_id for j in finished} <= {b.id for b in batch_jobs}
    count = len(batch_jobs)
    maintainer.run_once()
    assert len(tolu_client.batch_jobs.filter(site_id=tolu_site.id)) == count
