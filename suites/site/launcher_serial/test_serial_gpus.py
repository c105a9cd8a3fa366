"""Serial mode on a node declared with 4 GPUs: each job sees its own GPUs, CPU jobs none,
and a job that must wait for a GPU does not hold up the CPU jobs behind it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from runner.client import Client
from runner.states import JobState

S = JobState


@pytest.mark.parametrize("allocation", [None, "2,3,5,7"], ids=["declared", "allocation-list"])
def test_each_job_sees_its_own_gpus_and_cpu_jobs_see_none(
    allocation: str | None, tolu_site: Any, tolu_client: Client, make_jobs: Any, tolu_launcher: Any,
    serial_site: Any, check_gpu_jobs: Any,
) -> None:
    serial_site(0, cpus=4, node={"cpus": 4, "gpus": 4})
    packed = {"node_packing_count": 4}
    jobs = [
        *make_jobs("gpuenv", 6, resources={**packed, "gpus_per_rank": 1}),
        *make_jobs("gpuenv", 3, resources={**packed, "gpus_per_rank": 2}),
        *make_jobs("gpuenv", 6, resources=packed),
    ]
    env = {"CUDA_VISIBLE_DEVICES": allocation} if allocation else {}
    launcher = tolu_launcher("serial", max_idle_sec=3, env=env)
    assert launcher.wait(timeout=180) == 0, launcher.console_tail()
    check_gpu_jobs(tolu_client, tolu_site.path, jobs, ids=(allocation or "0,1,2,3").split(","))


def test_a_job_waiting_for_a_gpu_does_not_hold_up_cpu_jobs(
    tolu_site: Any, tolu_client: Client, make_jobs: Any, tolu_launcher: Any, serial_site: Any,
    tmp_path: Path,
) -> None:
    """The first job holds the only GPU until a file appears; the second waits for that GPU;
    the third (CPU only, queued behind the second) makes the file. Only a launcher that
    starts the third job while the second waits lets the first one finish."""
    serial_site(0, cpus=4, node={"cpus": 4, "gpus": 1})
    flag = tmp_path / "released"
    packed = {"node_packing_count": 4}
    holder = make_jobs("hold_until", parameters={"path": str(flag)}, retry_limit=0,
                       resources={**packed, "gpus_per_rank": 1, "wall_time_min": 1})[0]
    waiter = make_jobs("gpuenv", parameters={"seconds": 0}, resources={**packed, "gpus_per_rank": 1})[0]
    releaser = make_jobs("touch", parameters={"path": str(flag)}, resources=packed)[0]
    launcher = tolu_launcher("serial", max_idle_sec=3)
    assert launcher.wait(timeout=180) == 0, launcher.console_tail()
    states = {j.id: j.state for j in tolu_client.jobs.filter(id=[holder.id, waiter.id, releaser.id])}
    assert states == dict.fromkeys(states, S.JOB_FINISHED), states
