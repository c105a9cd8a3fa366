"""Serial mode killed with SIGKILL halfway: a second launcher finishes every job.

Killing ``tolu launcher`` takes its ``mpiexec`` down (PDEATHSIG), Hydra passes
SIGTERM to the ranks, and rank 0 ends the running tasks as RUN_TIMEOUT and closes
its session, so the second launcher can take over at once. The tasks' marker
files (each holds a lock on its workdir while it runs) show no job ever ran twice
at the same time.
"""

from __future__ import annotations

from typing import Any

from harness.waiting import wait_until
from runner.client import Client
from runner.states import JobState

S = JobState
N_JOBS = 200


def test_kill_9_halfway_then_a_second_launcher_finishes(
    tolu_site: Any, tolu_client: Client, make_jobs: Any, tolu_launcher: Any, serial_site: Any,
    wait_for_jobs: Any,
) -> None:
    serial_site(2, cpus=2)  # 3 ranks: rank 0 + 2 workers with 2 slots each
    jobs = make_jobs("marker", N_JOBS, parameters={"seconds": 0.05}, resources={"node_packing_count": 2})
    ids = [j.id for j in jobs]
    first = tolu_launcher("serial")

    def counts() -> dict[S, int]:
        assert first.poll() is None, first.console_tail()
        return tolu_client.jobs.counts(id=ids)

    wait_until(counts, check=lambda c: c.get(S.JOB_FINISHED, 0) >= N_JOBS // 2, timeout=180,
               interval=0.2, what="half of the jobs finished")
    first.kill()

    second = tolu_launcher("serial", max_idle_sec=10)
    finished = wait_for_jobs(tolu_client, jobs, states=[S.JOB_FINISHED], timeout=240)
    second.stop()
    for job in finished:
        marker = (tolu_site.path / "data" / job.workdir / "marker").read_text().split()
        assert "CONCURRENT" not in marker, (job.id, marker)
        assert marker[-2:] == ["start", "end"], (job.id, marker)
        events = [e.to_state for e in sorted(tolu_client.events.filter(job_id=job.id), key=lambda e: e.id)]
        assert events.count(S.RUN_DONE) == 1, (job.id, events)
