"""A batch job's filter tags and --tag select jobs (GPUs: test_mpi_gpus.py)."""

from __future__ import annotations

from typing import Any

from runner.client import Client
from runner.states import JobState

S = JobState


def test_batch_job_filter_tags_and_tag_option_select_jobs(
    tolu_site: Any, tolu_client: Client, make_jobs: Any, tolu_launcher: Any, fake_nodes: Any
) -> None:
    fake_nodes(1, cpus=2)
    mine = make_jobs("hello", 2, tags={"run": "a", "part": "1"}, resources={"node_packing_count": 2})
    other_part = make_jobs("hello", tags={"run": "a", "part": "2"})
    other_run = make_jobs("hello", tags={"run": "b", "part": "1"})
    batch = tolu_client.batch_jobs.create(site_id=tolu_site.id, num_nodes=1, wall_time_min=10,
                                          filter_tags={"run": "a"})
    launcher = tolu_launcher("mpi", batch_job_id=batch.id, tags={"part": "1"}, max_idle_sec=3)
    assert launcher.wait(timeout=120) == 0, launcher.console_tail()
    jobs = {j.id: j for j in tolu_client.jobs.filter(site_id=tolu_site.id)}
    for job in mine:
        assert jobs[job.id].state is S.JOB_FINISHED
        assert jobs[job.id].batch_job_id == batch.id
    assert jobs[other_part[0].id].state is S.PREPROCESSED
    assert jobs[other_run[0].id].state is S.PREPROCESSED
