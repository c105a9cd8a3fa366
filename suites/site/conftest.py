"""Fixtures shared by the site-service suites (processing, transfer): a round
driver and the launcher's state reports, made through the real API."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence

import pytest

from harness.fixtures_site import SiteHandle
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
        deadline = time.monotonic() + timeout
        rounds = 0
        now: dict[int, JobState] = {}
        while time.monotonic() < deadline:
            service.run_once()
            rounds += 1
            now = {j.id: j.state for j in tolu_client.jobs.filter(id=list(ids))}
            if all(s in wanted for s in now.values()):
                return rounds
            time.sleep(0.05)
        raise AssertionError(f"{service.name}: jobs not in {sorted(wanted)} after {rounds} rounds: {now}")

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
