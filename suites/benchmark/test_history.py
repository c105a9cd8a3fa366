"""harness/bench/history.py: a run's history read back page by page."""

from __future__ import annotations

import time
from types import SimpleNamespace
from typing import Any

import pytest

from harness.bench import history


def test_pages_follows_every_page_until_the_count(monkeypatch: pytest.MonkeyPatch) -> None:
    rows = list(range(12))
    asked: list[tuple[int, int]] = []

    def fetch(*, limit: int, offset: int, **params: object) -> SimpleNamespace:
        asked.append((limit, offset))
        assert params == {"site_id": 1}
        return SimpleNamespace(count=len(rows), results=rows[offset : offset + limit])

    monkeypatch.setattr(history, "PAGE", 5)
    assert list(history.pages(fetch, site_id=1)) == rows
    assert asked == [(5, 0), (5, 5), (5, 10)]


def test_pages_stops_on_an_empty_page_even_if_the_count_says_more() -> None:
    # rows deleted while paging: the count is stale, the empty page ends it
    def fetch(*, limit: int, offset: int) -> SimpleNamespace:
        return SimpleNamespace(count=100, results=[1, 2] if offset == 0 else [])

    assert list(history.pages(fetch)) == [1, 2]


def test_read_follows_every_job_through_id_batches_and_pages(
    monkeypatch: pytest.MonkeyPatch, tolu_site: Any, tolu_client: Any
) -> None:
    """30 jobs, Events asked for 7 job ids at a time, 10 rows a page: nothing missed, nothing mixed."""
    monkeypatch.setattr(history, "IDS_PER_REQUEST", 7)
    monkeypatch.setattr(history, "PAGE", 10)
    app = tolu_client.apps.create(site_id=tolu_site.id, name="noop", command_template="true")
    t0 = time.time()
    jobs = history.created(tolu_client.jobs.bulk_create([{"app_id": app.id} for _ in range(30)]))
    session = tolu_client.sessions.create(tolu_site.id, ttl_sec=600)
    ran = [int(j.id) for j in tolu_client.sessions.acquire(session.id, max_num_jobs=20)]
    tolu_client.jobs.bulk_update([{"id": i, "state": "RUNNING"} for i in ran])
    tolu_client.jobs.bulk_update([{"id": i, "state": "RUN_DONE", "return_code": 0} for i in ran])

    past = history.read(tolu_client, jobs, t0=t0)

    server = {int(j.id): str(j.state) for j in tolu_client.jobs.filter(site_id=tolu_site.id)}
    assert past.state == server
    assert past.final_states() == {"JOB_FINISHED": 20, "PREPROCESSED": 10}
    assert set(past.at["RUNNING"]) == set(ran) == set(past.at["RUN_DONE"]) == set(past.at["JOB_FINISHED"])
    for job in ran:
        assert past.created[job] <= past.at["RUNNING"][job] <= past.at["RUN_DONE"][job]
    steps = history.steps(tolu_client, sorted(jobs))
    assert all([s.id for s in job_steps] == sorted(s.id for s in job_steps) for job_steps in steps.values())
    assert {s[0].to_state for s in steps.values()} == {"CREATED"}
