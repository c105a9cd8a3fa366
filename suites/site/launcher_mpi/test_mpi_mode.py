"""MPI mode end to end: real server, real mpiexec, fake nodes through Hydra's fork launcher."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

from runner.apps import deserialize, serialize_args
from runner.client import Client
from runner.models import Job
from runner.states import JobState

S = JobState


def output(site_path: Path, job: Job) -> str:
    return (site_path / "data" / job.workdir / "job.out").read_text()


def events_of(client: Client, job: Job) -> list[Any]:
    return sorted(client.events.filter(job_id=job.id), key=lambda e: (e.timestamp, e.id))


def run_until_idle(tolu_launcher: Any, **opts: Any) -> Any:
    launcher = tolu_launcher("mpi", max_idle_sec=3, **opts)
    try:
        code = launcher.wait(timeout=180)
    except subprocess.TimeoutExpired:
        launcher.stop()
        raise AssertionError(f"launcher did not go idle:\n{launcher.console_tail()}") from None
    assert code == 0, launcher.console_tail()
    return launcher


def test_mix_of_jobs_ends_in_the_right_states(
    tolu_site: Any, tolu_client: Client, make_jobs: Any, tolu_launcher: Any, fake_nodes: Any,
    tolu_evidence: Any,
) -> None:
    fake_nodes(3, cpus=2)
    tolu_evidence.expect_errors(r"boom", r"explode")
    packed = make_jobs("hello", 4, parameters=[{"name": f"p{i}"} for i in range(4)],
                       resources={"node_packing_count": 2})
    multi_rank = make_jobs("hello", parameters={"name": "mr"}, resources={"ranks_per_node": 2})[0]
    multi_node = make_jobs("hello", parameters={"name": "mn"},
                           resources={"num_nodes": 2, "ranks_per_node": 2, "threads_per_rank": 1})[0]
    threaded = make_jobs("hello", parameters={"name": "th"}, resources={"threads_per_rank": 2})[0]
    failing = make_jobs("fail", parameters={"word": "bad; $(rm -rf /)", "rc": 3}, retry_limit=1)[0]
    timing_out = make_jobs("sleeper", parameters={"seconds": 60},
                           resources={"wall_time_min": 0.02}, retry_limit=0)[0]
    too_big = make_jobs("hello", parameters={"name": "big"}, resources={"ranks_per_node": 8})[0]
    square = tolu_site.apps["square"]
    explode = tolu_site.apps["explode"]
    (py_ok,) = tolu_client.jobs.bulk_create([{"app_id": square.id, "serialized_args": serialize_args((7,))}])
    (py_bad,) = tolu_client.jobs.bulk_create(
        [{"app_id": explode.id, "serialized_args": serialize_args(("kaboom",)), "retry_limit": 0}]
    )

    run_until_idle(tolu_launcher)

    by_id = {j.id: j for j in tolu_client.jobs.filter(site_id=tolu_site.id)}
    site = tolu_site.path
    for job in packed:
        assert by_id[job.id].state is S.JOB_FINISHED
        assert by_id[job.id].return_code == 0
        assert output(site, job).startswith(f"hello {job.parameters['name']} rank=0 size=1 host=fake")

    lines = sorted(output(site, multi_rank).splitlines())
    assert [line.split()[2] for line in lines] == ["rank=0", "rank=1"]
    assert len({line.split()[4] for line in lines}) == 1, lines  # both ranks on one node

    lines = sorted(output(site, multi_node).splitlines())
    assert [line.split()[3] for line in lines] == ["size=4"] * 4
    hosts = [line.split()[4] for line in lines]
    assert len(set(hosts)) == 2 and all(hosts.count(h) == 2 for h in hosts), lines

    assert "omp=2" in output(site, threaded)

    # failing: one retry, then FAILED; its output and the tail in the RUN_ERROR event
    assert by_id[failing.id].state is S.FAILED
    assert by_id[failing.id].return_code == 3
    errors = [e for e in events_of(tolu_client, failing) if e.to_state is S.RUN_ERROR]
    assert len(errors) == 2
    # the task printed a NUL byte after its word: the tail arrives, the NUL as U+FFFD
    assert "boom bad; $(rm -rf /)\ufffd" in errors[0].data["tail"]
    assert errors[0].data["return_code"] == 3

    # timing out: killed at its wall time, RUN_TIMEOUT with the reason, no retry left
    assert by_id[timing_out.id].state is S.FAILED
    timeouts = [e for e in events_of(tolu_client, timing_out) if e.to_state is S.RUN_TIMEOUT]
    assert len(timeouts) == 1 and "wall time" in timeouts[0].data["reason"]
    assert "sleeping" in timeouts[0].data["tail"]

    # can never fit a 2-CPU node: failed with the reason, never run
    assert by_id[too_big.id].state is S.FAILED
    reasons = [e.data.get("reason", "") for e in events_of(tolu_client, too_big)]
    assert any("does not fit" in r and "8 CPUs" in r for r in reasons), reasons
    assert not (site / "data" / too_big.workdir / "job.out").exists()

    # python functions: the result, or the exception with its traceback, in job.data
    ok = by_id[py_ok.id]
    assert ok.state is S.JOB_FINISHED
    assert deserialize(ok.data["result"]) == {"square": 49}
    bad = by_id[py_bad.id]
    assert bad.state is S.FAILED
    assert bad.data["exception"]["type"] == "ValueError"
    assert "kaboom" in bad.data["exception"]["message"]
    assert "raise ValueError(message)" in bad.data["exception"]["traceback"]

    # every run went RUNNING -> RUN_*, with the launcher's own timestamps in order
    for job in [*packed, multi_rank, multi_node, py_ok]:
        states = [e.to_state for e in events_of(tolu_client, job)]
        assert states[states.index(S.RUNNING) + 1] is S.RUN_DONE, states


def test_multi_node_jobs_get_whole_nodes_and_wait_for_them(
    tolu_site: Any, tolu_client: Client, make_jobs: Any, tolu_launcher: Any, fake_nodes: Any
) -> None:
    """Two 2-node jobs on a 3-node allocation cannot overlap; packed jobs fill the rest."""
    fake_nodes(3, cpus=2)
    big = make_jobs("sleeper", 2, parameters={"seconds": 1}, resources={"num_nodes": 2})
    small = make_jobs("hello", 6, resources={"node_packing_count": 2})
    run_until_idle(tolu_launcher)
    jobs = {j.id: j for j in tolu_client.jobs.filter(id=[j.id for j in big + small])}
    assert {j.state for j in jobs.values()} == {S.JOB_FINISHED}
    spans = []
    for job in big:
        ev = events_of(tolu_client, job)
        start = next(e.timestamp for e in ev if e.to_state is S.RUNNING)
        end = next(e.timestamp for e in ev if e.to_state is S.RUN_DONE)
        spans.append((start, end))
    (_a0, a1), (b0, _b1) = sorted(spans)
    assert a1 <= b0, f"2-node jobs overlapped on a 3-node allocation: {spans}"


def test_sigterm_stops_cleanly_and_marks_running_jobs_timed_out(
    tolu_site: Any, tolu_client: Client, make_jobs: Any, tolu_launcher: Any, fake_nodes: Any,
    wait_for_jobs: Any,
) -> None:
    fake_nodes(1, cpus=2)
    jobs = make_jobs("sleeper", 2, parameters={"seconds": 60}, resources={"node_packing_count": 2},
                     retry_limit=0)
    launcher = tolu_launcher("mpi")
    wait_for_jobs(tolu_client, jobs, states=[S.RUNNING], timeout=60)
    assert launcher.stop(grace=30) == 0
    done = wait_for_jobs(tolu_client, jobs, states=[S.FAILED], timeout=30)
    for job in done:
        reasons = [e.data.get("reason", "") for e in events_of(tolu_client, job)
                   if e.to_state is S.RUN_TIMEOUT]
        assert reasons and "launcher stopped" in reasons[0], reasons
    log = launcher.log_path.read_text()
    assert re.search(r"stopping: received SIGTERM", log), log[-2000:]
    assert "session" in log and "closed" in log


def test_own_wall_time_limits_what_it_takes_and_ends_it(
    tolu_site: Any, tolu_client: Client, make_jobs: Any, tolu_launcher: Any, fake_nodes: Any,
    wait_for_jobs: Any,
) -> None:
    fake_nodes(1, cpus=2)
    long_job = make_jobs("sleeper", parameters={"seconds": 1}, resources={"wall_time_min": 30})[0]
    short = make_jobs("sleeper", parameters={"seconds": 120}, resources={"node_packing_count": 2},
                      retry_limit=0)[0]
    launcher = tolu_launcher("mpi", wall_time_min=0.25)  # 15 s
    assert launcher.wait(timeout=120) == 0
    jobs = {j.id: j for j in tolu_client.jobs.filter(id=[long_job.id, short.id])}
    # 30 min does not fit in what was left of 0.25 min: never taken
    assert jobs[long_job.id].state is S.PREPROCESSED
    assert jobs[short.id].state is S.FAILED
    timeouts = [e for e in events_of(tolu_client, short) if e.to_state is S.RUN_TIMEOUT]
    assert timeouts and "wall time reached" in timeouts[0].data["reason"]
