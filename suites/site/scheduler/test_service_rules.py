"""The scheduler service's and queue maintainer's rules: what state is recorded, how many
BatchJobs are asked for, and that status polls are batched and rate-limited."""

from __future__ import annotations

import pytest
from sched_helpers import context

from harness.fixtures_site import SiteHandle
from runner.client import Client
from runner.platform.schedulers.base import BatchScheduler
from runner.site.queue_maintainer import to_submit
from runner.site.scheduler_service import SchedulerService, next_state
from runner.states import BATCH_TRANSITIONS
from runner.states import BatchJobState as B


@pytest.mark.parametrize("current", [B.QUEUED, B.RUNNING, B.UNKNOWN, B.PENDING_DELETION])
@pytest.mark.parametrize("reported", list(B))
def test_recorded_state_is_always_allowed(current: B, reported: B) -> None:
    new = next_state(current, reported)
    if new is not None:
        assert new in BATCH_TRANSITIONS[current], f"{current} -> {new} is not in the life cycle"
    if current is B.PENDING_DELETION:
        assert new in (None, B.FINISHED), "a job asked deleted ends finished, whatever the scheduler says"


def test_requeued_job_is_not_moved_back() -> None:
    assert next_state(B.RUNNING, B.QUEUED) is None
    assert next_state(B.QUEUED, B.RUNNING) is B.RUNNING
    assert next_state(B.RUNNING, B.UNKNOWN) is B.UNKNOWN
    assert next_state(B.UNKNOWN, B.FAILED) is B.FAILED


def test_queue_maintainer_counts() -> None:
    assert to_submit(backlog=0, in_flight=0, depth=3) == 0
    assert to_submit(backlog=5, in_flight=0, depth=3) == 3
    assert to_submit(backlog=5, in_flight=2, depth=3) == 1
    assert to_submit(backlog=5, in_flight=4, depth=3) == 0


class Counting:
    """Counts the status calls a real scheduler object receives (wraps, does not replace it)."""

    def __init__(self, inner: BatchScheduler) -> None:
        self.inner = inner
        self.calls: list[list[str]] = []

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)

    def status(self, ids: list[str]) -> object:
        self.calls.append(list(ids))
        return self.inner.status(ids)


@pytest.mark.usefixtures("reap_batch_jobs")
def test_status_polls_are_one_call_and_rate_limited(tolu_site: SiteHandle, tolu_client: Client) -> None:
    tolu_site.write_settings(scheduler={"name": "local", "poll_interval_sec": 30},
                             launcher={"idle_timeout_sec": 120})
    now = [1000.0]
    service = SchedulerService(context(tolu_site, tolu_client), clock=lambda: now[0])
    counting = Counting(service.scheduler)
    service._scheduler = counting  # type: ignore[assignment]
    for _ in range(3):
        tolu_client.batch_jobs.create(site_id=tolu_site.id, num_nodes=1, wall_time_min=5, job_mode="serial")
    service.run_once()  # submits all three; nothing to poll yet
    assert counting.calls == []
    service.run_once()  # first poll: one call for all three
    assert len(counting.calls) == 1 and len(counting.calls[0]) == 3
    now[0] += 10
    service.run_once()  # within poll_interval_sec: no call
    assert len(counting.calls) == 1
    now[0] += 25
    service.run_once()
    assert len(counting.calls) == 2
    states = {b.state for b in tolu_client.batch_jobs.filter(site_id=tolu_site.id)}
    assert states == {B.RUNNING}
