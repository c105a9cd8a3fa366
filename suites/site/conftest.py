"""Fixtures shared by the site-service suites (processing, transfer): a round
driver and the launcher's state reports, made through the real API."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import pytest

from harness.fixtures_site import SiteHandle
from harness.waiting import wait_until
from runner.client import Client
from runner.models import Job
from runner.site.service import Service
from runner.states import JobState

Drive = Callable[[Service, Sequence[int], Iterable[JobState]], int]
Report = Callable[[Sequence[Job], JobState], None]


@pytest.fixture
def drive(tolu_client: Client) -> Drive:
    """``drive(service, job_ids, states)``: run rounds until every job is in one of ``states``."""

    def run(service: Service, ids: Sequence[int], states: Iterable[JobState], timeout: float = 60.0) -> int:
        wanted = set(states)
        rounds = 0

        def one_round() -> dict[int, JobState]:
            nonlocal rounds
            service.run_once()
            rounds += 1
            return {j.id: j.state for j in tolu_client.jobs.filter(id=list(ids))}

        wait_until(
            one_round,
            check=lambda now: all(s in wanted for s in now.values()),
            timeout=timeout,
            interval=0.05,
            what=f"{service.name}: jobs in {sorted(wanted)}",
        )
        return rounds

    return run


@pytest.fixture
def report(tolu_client: Client, tolu_site: SiteHandle) -> Report:
    """``report(jobs, outcome)``: what a launcher does — acquire, RUNNING, then ``outcome``."""

    def run(jobs: Sequence[Job], outcome: JobState) -> None:
        session = tolu_client.sessions.create(tolu_site.id)
        try:
            held = tolu_client.sessions.acquire(session.id, max_num_jobs=len(jobs) + 100)
            ids = {j.id for j in jobs}
            assert ids <= {j.id for j in held}, "the jobs were not runnable"
            tolu_client.jobs.bulk_update([{"id": i, "state": "RUNNING"} for i in ids])
            rc = 0 if outcome == JobState.RUN_DONE else 1
            tolu_client.jobs.bulk_update([{"id": i, "state": outcome.value, "return_code": rc} for i in ids])
        finally:
            tolu_client.sessions.delete(session.id)

    return run


GpuCheck = Callable[[Client, Path, Sequence[Job]], None]


@pytest.fixture
def check_gpu_jobs() -> GpuCheck:
    """``check_gpu_jobs(client, site_path, jobs)`` for jobs of the ``gpuenv`` app run on a
    node declared with 4 GPUs: every job saw exactly its own number of GPUs (none: every
    runtime's "no device"), ids from the node's list, and no two jobs held the same GPU
    while both ran (their RUNNING -> RUN_DONE Events). Returns nothing; asserts."""

    def check(
        client: Client, site_path: Path, jobs: Sequence[Job], ids: Sequence[str] = ("0", "1", "2", "3")
    ) -> None:
        spans: list[tuple[float, float, set[str], int]] = []
        for job in client.jobs.filter(id=[j.id for j in jobs]):
            assert job.state is JobState.JOB_FINISHED, job
            seen = dict(
                item.split("=", 1)
                for item in (site_path / "data" / job.workdir / "job.out").read_text().split()
            )
            if job.gpus_per_rank == 0:
                assert seen == {"cuda": "-1", "rocr": "-1", "hip": "-1", "oneapi": "*:cpu"}, (job.id, seen)
                continue
            held = set(seen["cuda"].split(","))
            assert len(held) == job.gpus_per_rank and held <= set(ids), (job.id, seen)
            events = client.events.filter(job_id=job.id)
            start = max(e.timestamp for e in events if e.to_state is JobState.RUNNING)
            end = min(e.timestamp for e in events if e.to_state is JobState.RUN_DONE)
            spans.append((start.timestamp(), end.timestamp(), held, job.id))
        overlapping = 0
        for i, (a0, a1, ga, ja) in enumerate(spans):
            for b0, b1, gb, jb in spans[i + 1 :]:
                if a0 < b1 and b0 < a1:
                    overlapping += 1
                    assert not ga & gb, f"jobs {ja} and {jb} held GPU(s) {ga & gb} at the same time"
        # the check above means something only if GPU jobs did run side by side
        assert overlapping > 0, spans

    return check
