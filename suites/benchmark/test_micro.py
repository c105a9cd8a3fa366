"""Micro-benchmarks of the hot paths (small N, for CI): behaviour asserts only, no timing asserts."""

from __future__ import annotations

from typing import Any

import pytest

from runner.platform.node_manager import JobRequest, NodeManager
from runner.platform.nodes import Node

BATCH = 200


@pytest.fixture
def noop_app(tolu_site: Any, tolu_client: Any) -> Any:
    return tolu_client.apps.create(site_id=tolu_site.id, name="noop", command_template="true")


def test_acquire(benchmark: Any, tolu_site: Any, tolu_client: Any, noop_app: Any) -> None:
    session = tolu_client.sessions.create(tolu_site.id, ttl_sec=600)
    acquired: list[int] = []
    rounds: list[int] = []

    def make_jobs() -> None:
        tolu_client.jobs.bulk_create([{"app_id": noop_app.id} for _ in range(BATCH)])
        rounds.append(1)

    def acquire() -> None:
        acquired.extend(int(j.id) for j in tolu_client.sessions.acquire(session.id, max_num_jobs=BATCH))

    benchmark.pedantic(acquire, setup=make_jobs, rounds=5, iterations=1)

    # (rounds: 5, or 1 when pytest-benchmark is disabled)
    assert len(acquired) == len(rounds) * BATCH
    assert len(set(acquired)) == len(acquired), "a job was acquired twice"
    held = tolu_client.jobs.filter(session_id=session.id)
    assert {j.id for j in held} == set(acquired)


def test_bulk_update(benchmark: Any, tolu_site: Any, tolu_client: Any, noop_app: Any) -> None:
    session = tolu_client.sessions.create(tolu_site.id, ttl_sec=600)
    done: list[int] = []
    batch: list[int] = []

    def acquire_batch() -> None:
        tolu_client.jobs.bulk_create([{"app_id": noop_app.id} for _ in range(BATCH)])
        batch[:] = [int(j.id) for j in tolu_client.sessions.acquire(session.id, max_num_jobs=BATCH)]

    def run_and_finish() -> None:
        tolu_client.jobs.bulk_update([{"id": i, "state": "RUNNING"} for i in batch])
        tolu_client.jobs.bulk_update([{"id": i, "state": "RUN_DONE", "return_code": 0} for i in batch])
        done.extend(batch)

    benchmark.pedantic(run_and_finish, setup=acquire_batch, rounds=5, iterations=1)

    counts = tolu_client.jobs.counts(site_id=tolu_site.id)
    assert done and len(done) % BATCH == 0
    assert counts.get("JOB_FINISHED", 0) == len(done)
    events = tolu_client.events.filter(job_id=done[0])
    assert [str(e.to_state) for e in events][-1] == "JOB_FINISHED"


def test_node_packing(benchmark: Any) -> None:
    nodes = [Node(hostname=f"n{i}", cpus=64) for i in range(16)]
    requests = [JobRequest(job_id=i, node_packing_count=16) for i in range(16 * 16)]
    peaks: list[float] = []

    def fill_and_drain() -> None:
        manager = NodeManager(nodes)
        placed = [manager.assign(r) for r in requests]
        assert manager.assign(JobRequest(job_id=10**6, node_packing_count=16)) is None
        peaks.append(manager.utilization())
        for a in placed:
            assert a is not None
            manager.free(a.job_id)
        assert manager.utilization() == 0 and manager.idle_nodes() == len(nodes)

    benchmark(fill_and_drain)

    assert peaks and all(p == 1.0 for p in peaks)
