"""Real Slurm: submit, track, cancel; jobs that left the queue resolved; the scheduler service
and queue maintainer running H5's launcher inside real allocations (MPI and serial mode)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from sched_helpers import context, drive

from harness.fixtures_site import MakeJobs, SiteHandle, SlurmInfo
from harness.waiting import wait_until
from runner.client import Client
from runner.models import BatchJob
from runner.platform.schedulers import SchedulerStatus
from runner.platform.schedulers.slurm import Slurm
from runner.site.queue_maintainer import QueueMaintainer
from runner.site.scheduler_service import SchedulerService
from runner.site.settings import SchedulerSettings
from runner.states import BatchJobState as B

pytestmark = pytest.mark.requires("slurm")

SLURM = {"name": "slurm", "poll_interval_sec": 1}


def _batch_job(id: int, minutes: int = 5) -> BatchJob:
    from datetime import UTC, datetime

    now = datetime.now(UTC)
    return BatchJob(
        id=id,
        site_id=0,
        scheduler_id=None,
        project="",
        queue="",
        num_nodes=1,
        wall_time_min=minutes,
        job_mode="mpi",
        filter_tags={},
        options={},
        state="pending_submission",
        status_info={},
        start_time=None,
        end_time=None,
        created_at=now,
        updated_at=now,
    )


def _wait(slurm: Slurm, sid: str, states: set[B], timeout: float = 60) -> SchedulerStatus:
    return wait_until(
        lambda: slurm.status([sid])[sid],
        check=lambda status: status.state in states,
        timeout=timeout,
        interval=0.5,
        what=f"slurm job {sid} in {sorted(states)}",
    )


def test_submit_track_cancel_resolve(slurm: SlurmInfo, tmp_path: Path) -> None:
    sched = Slurm(tmp_path / "batch")
    settings = SchedulerSettings(name="slurm")
    done_script = sched.write_script(_batch_job(1), [sys.executable, "-c", "print('ok')"], settings)
    sleep_script = sched.write_script(_batch_job(2), ["sleep", "300"], settings)
    done_id, sleep_id = sched.submit(done_script), sched.submit(sleep_script)
    try:
        finished = _wait(sched, done_id, {B.FINISHED, B.FAILED})
        assert finished.state is B.FINISHED and finished.native_state == "COMPLETED"
        assert finished.start_time is not None and finished.end_time is not None
        assert finished.exit_code == 0  # squeue has none: completed from the exit-code file
        assert (tmp_path / "batch" / f"{done_id}.ec").read_text().strip() == "0"

        running = _wait(sched, sleep_id, {B.RUNNING})
        assert running.start_time is not None
        sched.cancel(sleep_id)
        cancelled = _wait(sched, sleep_id, {B.FINISHED, B.FAILED})
        assert cancelled.native_state == "CANCELLED"
    finally:
        subprocess.run(["scancel", done_id, sleep_id], capture_output=True, check=False, timeout=30)

    # Gone from the queue (MinJobAge passed, or never known): resolved through the scheduler's
    # history (sacct -c), else the exit-code file, else FAILED with the reason; one call for all.
    resolved = sched.resolve_vanished([done_id, sleep_id, "999999"])
    assert resolved[done_id].state is B.FINISHED and resolved[done_id].exit_code == 0
    assert resolved[sleep_id].state is B.FAILED and resolved[sleep_id].native_state == "CANCELLED"
    assert resolved["999999"].state is B.FAILED and "without an exit code" in resolved["999999"].reason
    both = sched.status([done_id, "999999"])
    assert both[done_id].state is B.FINISHED and both["999999"].state is B.FAILED

    for window in sched.backfill_windows():
        assert window.queue in slurm.partitions and window.num_nodes >= 1


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "runner.cli.main", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.usefixtures("reap_batch_jobs")
def test_queue_cli_and_service_cancel(slurm: SlurmInfo, tolu_site: SiteHandle, tolu_client: Client) -> None:
    """`tolu queue submit` -> sbatch -> running -> `tolu queue rm` -> scancel -> finished."""
    tolu_site.write_settings(scheduler=SLURM, launcher={"idle_timeout_sec": 300})
    service = SchedulerService(context(tolu_site, tolu_client))
    out = _cli(
        "queue",
        "submit",
        "--site",
        str(tolu_site.path),
        "-n",
        "1",
        "-t",
        "5",
        "-q",
        slurm.default_partition,
        "--mode",
        "serial",
        "--tag",
        "run=cli",
        "--json",
    )
    assert out.returncode == 0, out.stderr
    bj_id = json.loads(out.stdout)["id"]
    drive([service], lambda: tolu_client.batch_jobs.get(bj_id).state is B.RUNNING, timeout=60, what="running")
    running = tolu_client.batch_jobs.get(bj_id)
    assert running.scheduler_id and slurm.squeue([running.scheduler_id]) == {running.scheduler_id: "RUNNING"}
    listed = json.loads(_cli("queue", "ls", "--site", str(tolu_site.path), "--json").stdout)
    assert [b["id"] for b in listed] == [bj_id] and listed[0]["state"] == "running"

    assert _cli("queue", "rm", str(bj_id)).returncode == 0
    drive([service], lambda: tolu_client.batch_jobs.get(bj_id).state is B.FINISHED, timeout=60, what="cancel")
    done = tolu_client.batch_jobs.get(bj_id)
    assert done.status_info["native_state"] == "CANCELLED" and done.end_time is not None
    assert slurm.squeue([running.scheduler_id]).get(running.scheduler_id) in (None, "CANCELLED")


@pytest.mark.usefixtures("reap_batch_jobs")
@pytest.mark.parametrize("mode", ["serial", "mpi"])
def test_launcher_in_slurm_allocation_runs_jobs(
    mode: str, slurm: SlurmInfo, tolu_site: SiteHandle, tolu_client: Client, make_jobs: MakeJobs
) -> None:
    """Queue maintainer depth 1 on Slurm: the launcher runs inside a real allocation until the
    backlog is done, idles out, and its batch job ends finished."""
    tolu_site.write_settings(
        scheduler=SLURM,
        launcher={"idle_timeout_sec": 3},
        queue_maintainer={
            "enabled": True,
            "depth": 1,
            "num_nodes": 1,
            "wall_time_min": 5,
            "job_mode": mode,
            "queue": slurm.default_partition,
            "poll_interval_sec": 1,
        },
    )
    ctx = context(tolu_site, tolu_client)
    maintainer, scheduler = QueueMaintainer(ctx), SchedulerService(ctx)
    jobs = make_jobs("hello", 8, parameters=[{"name": f"n{i}"} for i in range(8)])

    def all_finished() -> bool:
        return {j.state.value for j in tolu_client.jobs.filter(id=[j.id for j in jobs])} == {"JOB_FINISHED"}

    drive(
        [maintainer, scheduler],
        all_finished,
        timeout=180,
        pause=0.5,
        what=f"8 jobs in a Slurm {mode} launcher",
    )

    def allocation_ended() -> bool:
        return all(
            b.state in (B.FINISHED, B.FAILED) for b in tolu_client.batch_jobs.filter(site_id=tolu_site.id)
        )

    drive(
        [maintainer, scheduler],
        allocation_ended,
        timeout=60,
        what="the allocation to end after the launcher idled out",
    )
    batch_jobs = tolu_client.batch_jobs.filter(site_id=tolu_site.id)
    assert len(batch_jobs) == 1, batch_jobs
    bj = batch_jobs[0]
    assert bj.state is B.FINISHED and bj.scheduler_id and bj.scheduler_id.isdigit()
    assert bj.start_time is not None and bj.end_time is not None
    ran = tolu_client.jobs.filter(id=[j.id for j in jobs])
    assert {j.batch_job_id for j in ran} == {bj.id}
    outputs = sorted((tolu_site.path / "data" / j.workdir / "job.out").read_text().strip() for j in ran)
    assert outputs == sorted(f"hello n{i}" for i in range(8))
