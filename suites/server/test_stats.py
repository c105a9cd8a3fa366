"""GET /stats/sites and GET /stats/history: the numbers are right, each user sees only
their own, and bad input is a 422 naming the field."""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from server_helpers import Raw, SiteApp, make_site_app

from runner.client import Client
from runner.states import JobState

S = JobState


def _run(
    client: Client, sa: SiteApp, spans: list[tuple[float, float, int]], t0: datetime, batch_id: int
) -> None:
    """One job per (start, end, nodes) offset in seconds from ``t0``: RUNNING then RUN_DONE at
    those times (the launcher's ``state_timestamp``), held by a session of ``batch_id``."""
    jobs = client.jobs.bulk_create(
        [
            {"app_id": sa.app.id, "resources": {"num_nodes": nodes}, "tags": {"part": "timed"}}
            for _, _, nodes in spans
        ]
    )
    session = client.sessions.create(sa.site.id, batch_job_id=batch_id)
    held = client.sessions.acquire(session.id, max_num_jobs=100)
    assert {j.id for j in held} == {j.id for j in jobs}
    client.jobs.bulk_update(
        [
            {"id": j.id, "state": "RUNNING", "state_timestamp": t0 + timedelta(seconds=a)}
            for j, (a, _, _) in zip(jobs, spans, strict=True)
        ]
    )
    client.jobs.bulk_update(
        [
            {"id": j.id, "state": "RUN_DONE", "return_code": 0, "state_timestamp": t0 + timedelta(seconds=b)}
            for j, (_, b, _) in zip(jobs, spans, strict=True)
        ]
    )
    client.sessions.delete(session.id)


def test_history_is_exact_per_interval(tolu_client: Client, raw: Raw) -> None:
    sa = make_site_app(tolu_client)
    now = datetime.now(UTC)
    t0 = datetime.fromtimestamp(
        math.floor(now.timestamp() / 3600) * 3600 - 7200, UTC
    )  # a round hour, 2 h ago
    batch = tolu_client.batch_jobs.create(site_id=sa.site.id, num_nodes=4, wall_time_min=10)
    tolu_client.batch_jobs.update(
        batch.id, state="running", start_time=t0, end_time=t0 + timedelta(seconds=150)
    )
    # running: A [10, 40), B [10, 100), C [70, 130) on 2 nodes
    _run(tolu_client, sa, [(10, 40, 1), (10, 100, 1), (70, 130, 2)], t0, batch.id)

    window = {"after": t0.isoformat(), "before": (t0 + timedelta(minutes=5)).isoformat(), "buckets": 5}
    h = raw("GET", "/stats/history", params={**window, "site_id": sa.site.id}).json()
    assert h["interval_sec"] == 60
    assert h["start"].startswith(t0.strftime("%Y-%m-%dT%H:%M:%S"))
    pts = h["points"]
    assert len(pts) == 5
    expect_running = [30 / 60 + 50 / 60, 40 / 60 + 50 / 60, 10 / 60, 0, 0]
    expect_nodes = [30 / 60 + 50 / 60, 40 / 60 + 2 * 50 / 60, 2 * 10 / 60, 0, 0]
    expect_available = [4, 4, 4 * 30 / 60, 0, 0]
    assert [p["running"] for p in pts] == pytest.approx(expect_running, abs=1e-3)
    assert [p["busy_nodes"] for p in pts] == pytest.approx(expect_nodes, abs=1e-3)
    assert [p["available_nodes"] for p in pts] == pytest.approx(expect_available, abs=1e-3)
    # they finished when the server advanced them (now), outside this window
    assert h["finished"] == 0 and all(p["finished"] == 0 for p in pts)

    # the last hour: the three finished, nothing ran (the RUNNING spans are older: the level
    # before the axis is carried in, and it is zero)
    recent = raw("GET", "/stats/history", params={"after": (now - timedelta(hours=1)).isoformat()}).json()
    assert recent["finished"] == 3 and recent["failed"] == 0
    assert max(p["running"] for p in recent["points"]) == 0

    # a batch job's utilization: by default over its lifetime (t0 .. t0+150)
    u = raw("GET", "/stats/history", params={"batch_job_id": batch.id, "buckets": 3}).json()
    assert u["interval_sec"] == 60
    # its last interval ends with the allocation (t0 + 150): averaged over those 30 s
    assert [p["busy_nodes"] for p in u["points"]] == pytest.approx([*expect_nodes[:2], 2 * 10 / 30], abs=1e-3)

    # filters: tags and app narrow the jobs; an unrelated tag leaves nothing
    tagged = raw("GET", "/stats/history", params={**window, "tags": "part:timed"}).json()
    assert [p["running"] for p in tagged["points"]] == pytest.approx(expect_running, abs=1e-3)
    other = raw("GET", "/stats/history", params={**window, "tags": "part:other", "app_id": sa.app.id}).json()
    assert all(p["running"] == 0 for p in other["points"])


def test_site_cards(tolu_client: Client, raw: Raw) -> None:
    sa = make_site_app(tolu_client)
    idle = make_site_app(tolu_client)
    tolu_client.sites.heartbeat(sa.site.id)
    jobs = tolu_client.jobs.bulk_create(
        [{"app_id": sa.app.id, "resources": {"num_nodes": 2, "node_packing_count": 4}} for _ in range(5)]
    )
    batch = tolu_client.batch_jobs.create(site_id=sa.site.id, num_nodes=3, wall_time_min=10)
    tolu_client.batch_jobs.update(batch.id, state="running", start_time=datetime.now(UTC))
    tolu_client.batch_jobs.create(site_id=sa.site.id, num_nodes=1, wall_time_min=10)  # pending submission
    session = tolu_client.sessions.create(sa.site.id, batch_job_id=batch.id)
    held = tolu_client.sessions.acquire(session.id, max_num_jobs=2)
    tolu_client.jobs.bulk_update([{"id": j.id, "state": "RUNNING"} for j in held])

    cards = {c["site_id"]: c for c in raw("GET", "/stats/sites").json()}
    assert set(cards) == {sa.site.id, idle.site.id}
    card = cards[sa.site.id]
    assert card["agent_alive"] is True and card["last_heartbeat"] is not None
    assert card["jobs"] == {"RUNNING": 2, "PREPROCESSED": len(jobs) - 2}
    assert (card["batch_jobs_queued"], card["batch_jobs_running"]) == (1, 1)
    assert card["nodes_total"] == 3
    assert card["nodes_busy"] == pytest.approx(2 * 2 / 4)
    assert card["nodes_free"] == pytest.approx(3 - 1)
    assert cards[idle.site.id]["agent_alive"] is False
    assert cards[idle.site.id]["jobs"] == {}
    tolu_client.sessions.delete(session.id)


def test_stats_are_per_user(tolu_client: Client, make_user: Callable[[], Client]) -> None:
    sa = make_site_app(tolu_client)
    tolu_client.jobs.bulk_create([{"app_id": sa.app.id}])
    batch = tolu_client.batch_jobs.create(site_id=sa.site.id, num_nodes=1, wall_time_min=5)
    bob = make_user()
    assert bob.token is not None
    other = Raw(bob.url, bob.token)
    assert other("GET", "/stats/sites").json() == []
    empty = other("GET", "/stats/history").json()
    assert empty["finished"] == 0 and all(p["running"] == 0 for p in empty["points"])
    for params in ({"batch_job_id": batch.id}, {"site_id": sa.site.id}, {"app_id": sa.app.id}):
        r = other("GET", "/stats/history", params=params)
        assert r.status_code == 404, (params, r.text)


@pytest.mark.parametrize(
    ("params", "loc"),
    [
        ({"buckets": 0}, ["query", "buckets"]),
        ({"buckets": 1001}, ["query", "buckets"]),
        ({"after": "yesterday"}, ["query", "after"]),
        ({"after": "2030-01-02T00:00:00Z", "before": "2030-01-01T00:00:00Z"}, ["query", "after"]),
        ({"tags": "no-colon"}, ["query", "tags", 0]),
        ({"site_id": "x"}, ["query", "site_id"]),
    ],
)
def test_bad_history_queries_name_the_field(raw: Raw, params: dict[str, Any], loc: list[Any]) -> None:
    r = raw("GET", "/stats/history", params=params)
    assert r.status_code == 422, r.text
    assert [e["loc"] for e in r.json()["detail"]] == [loc]


def test_stats_need_a_token(tolu_server: Any) -> None:
    import requests

    for path in ("/stats/sites", "/stats/history"):
        assert requests.get(tolu_server.url + path, timeout=30).status_code == 401
