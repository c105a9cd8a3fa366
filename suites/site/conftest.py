"""Fixtures shared by the site-service suites (processing, transfer): a round
driver and the launcher's state reports, made through the real API."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

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
