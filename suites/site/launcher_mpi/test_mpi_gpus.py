"""MPI mode on a node declared with 4 GPUs: each job sees its own GPUs, CPU jobs none."""

from __future__ import annotations

from typing import Any

import pytest

from runner.client import Client


@pytest.mark.parametrize("allocation", [None, "2,3,5,7"], ids=["declared", "allocation-list"])
def test_each_job_sees_its_own_gpus_and_cpu_jobs_see_none(
    allocation: str | None, tolu_site: Any, tolu_client: Client, make_jobs: Any, tolu_launcher: Any,
    fake_nodes: Any, check_gpu_jobs: Any,
) -> None:
    fake_nodes(1, cpus=4, node={"cpus": 4, "gpus": 4})
    packed = {"node_packing_count": 4}
    jobs = [
        *make_jobs("gpuenv", 6, resources={**packed, "gpus_per_rank": 1}),
        *make_jobs("gpuenv", 3, resources={**packed, "gpus_per_rank": 2}),
        *make_jobs("gpuenv", 6, resources=packed),
    ]
    env = {"CUDA_VISIBLE_DEVICES": allocation} if allocation else {}
    launcher = tolu_launcher("mpi", max_idle_sec=3, env=env)
    assert launcher.wait(timeout=180) == 0, launcher.console_tail()
    check_gpu_jobs(tolu_client, tolu_site.path, jobs, ids=(allocation or "0,1,2,3").split(","))
