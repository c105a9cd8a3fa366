"""Serial mode end to end: real server, mpi4py ranks started once by the mpich wheel's mpiexec."""

from __future__ import annotations

import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from runner.apps import deserialize, serialize_args
from runner.client import Client
from runner.models import Job
from runner.states import JobState

S = JobState


def output(site_path: Path, job: Job) -> str:
    return (site_path / "data" / job.workdir / "job.out").read_text()


def run_until_idle(tolu_launcher: Any, **opts: Any) -> Any:
    launcher = tolu_launcher("serial", max_idle_sec=3, **opts)
    try:
        code = launcher.wait(timeout=180)
    except subprocess.TimeoutExpired:
        launcher.stop()
        raise AssertionError(f"launcher did not go idle:\n{launcher.console_tail()}") from None
    assert code == 0, launcher.console_tail()
    return launcher


@pytest.mark.parametrize("nodes", [0, 2], ids=["1-rank", "3-ranks"])
def test_serial_mode_runs_a_mix(
    nodes: int, tolu_site: Any, tolu_client: Client, make_jobs: Any, tolu_launcher: Any,
    serial_site: Any, tolu_evidence: Any,
) -> None:
    serial_site(nodes, cpus=2)
    tolu_evidence.expect_errors(r"boom", r"kaboom")
    hello = make_jobs("hello", 40, parameters=[{"name": f"h{i}"} for i in range(40)],
                      resources={"node_packing_count": 2})
    failing = make_jobs("fail", parameters={"word": "serial", "rc": 5}, retry_limit=0)[0]
    too_big = make_jobs("hello", resources={"threads_per_rank": 4})[0]
    multi_rank = make_jobs("hello", resources={"ranks_per_node": 2})[0]  # not a serial job
    timing_out = make_jobs("sleeper", parameters={"seconds": 60},
                           resources={"wall_time_min": 0.02, "node_packing_count": 2}, retry_limit=0)[0]
    (py_ok,) = tolu_client.jobs.bulk_create(
        [{"app_id": tolu_site.apps["square"].id, "serialized_args": serialize_args((12,))}]
    )
    (py_bad,) = tolu_client.jobs.bulk_create(
        [{"app_id": tolu_site.apps["explode"].id, "serialized_args": serialize_args(("kaboom",)),
          "retry_limit": 0}]
    )

    run_until_idle(tolu_launcher)

    by_id = {j.id: j for j in tolu_client.jobs.filter(site_id=tolu_site.id)}
    hosts: Counter[str] = Counter()
    for job in hello:
        assert by_id[job.id].state is S.JOB_FINISHED, by_id[job.id]
        line = output(tolu_site.path, job)
        # a plain process: no MPI rank variables leak from the worker rank into the task
        assert line.startswith(f"hello {job.parameters['name']} rank=0 size=1 host="), line
        hosts[line.split("host=")[1].split()[0]] += 1
    if nodes:
        assert set(hosts) == {"fake01", "fake02"}, hosts  # both worker ranks ran tasks
    else:
        assert len(hosts) == 1

    assert by_id[failing.id].state is S.FAILED and by_id[failing.id].return_code == 5
    err = [e for e in tolu_client.events.filter(job_id=failing.id) if e.to_state is S.RUN_ERROR]
    # the task printed a NUL byte after its word: the tail arrives, the NUL as U+FFFD
    assert "boom serial\ufffd" in err[0].data["tail"]

    reasons = [e.data.get("reason", "") for e in tolu_client.events.filter(job_id=too_big.id)]
    assert by_id[too_big.id].state is S.FAILED and any("does not fit" in r for r in reasons), reasons
    assert by_id[multi_rank.id].state is S.PREPROCESSED  # left for an MPI-mode launcher

    assert by_id[timing_out.id].state is S.FAILED
    timeouts = [e for e in tolu_client.events.filter(job_id=timing_out.id) if e.to_state is S.RUN_TIMEOUT]
    assert "wall time" in timeouts[0].data["reason"]

    assert deserialize(by_id[py_ok.id].data["result"]) == {"square": 144}
    assert by_id[py_bad.id].data["exception"]["type"] == "ValueError"


@pytest.mark.parametrize("nodes", [0, 2], ids=["1-rank", "3-ranks"])
def test_the_last_outcomes_go_at_once_not_at_the_next_report_tick(
    nodes: int, tolu_client: Client, make_jobs: Any, tolu_launcher: Any, serial_site: Any,
    wait_for_jobs: Any,
) -> None:
    """A launcher that holds no job any more sends its queued reports at once: with the
    report interval at an hour, a wave of jobs still ends JOB_FINISHED while it runs."""
    serial_site(nodes, cpus=2, report_interval_sec=3600)
    jobs = make_jobs("hello", 6, parameters=[{"name": f"w{i}"} for i in range(6)])
    launcher = tolu_launcher("serial")
    try:
        wait_for_jobs(tolu_client, jobs, states=[S.JOB_FINISHED], timeout=120)
    finally:
        launcher.stop()


def test_sigterm_ends_running_tasks_as_timed_out(
    tolu_site: Any, tolu_client: Client, make_jobs: Any, tolu_launcher: Any, serial_site: Any,
    wait_for_jobs: Any,
) -> None:
    serial_site(2, cpus=1)
    jobs = make_jobs("sleeper", 2, parameters={"seconds": 60}, retry_limit=0)
    launcher = tolu_launcher("serial")
    wait_for_jobs(tolu_client, jobs, states=[S.RUNNING], timeout=60)
    assert launcher.stop(grace=30) == 0
    for job in wait_for_jobs(tolu_client, jobs, states=[S.FAILED], timeout=30):
        reasons = [e.data.get("reason", "") for e in tolu_client.events.filter(job_id=job.id)
                   if e.to_state is S.RUN_TIMEOUT]
        assert reasons and "launcher stopped" in reasons[0], reasons
    # the worker ranks could note their starts on this site's first launch (rank 0 makes
    # the journal's directory, maybe after they look for it)
    logs = "".join(p.read_text() for p in (tolu_site.path / "log").iterdir() if p.is_file())
    assert "cannot make the start journal" not in logs
