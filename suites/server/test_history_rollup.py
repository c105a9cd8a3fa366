"""GET /stats/history from the rolled-up cells answers exactly what a scan of the Events answers.

The server reads the cells (services/history_rollup.py) when no job filter is given, and
scans the Events when one is: every job here carries the tag ``all:yes``, so the same
question asked with ``tags=all:yes`` is the scan's answer, and the two JSON answers must
be equal number for number — over random Event streams (microsecond timestamps, jobs on
several nodes and packed ones, failures, two sites, another user's Events at the same
times), windows whose ends fall inside a cell, several bucket widths, after Events that
arrive late with old timestamps, after jobs are deleted and after a job's nodes change.
On PostgreSQL with two server workers, an Event that commits after later ids were
rolled up is not lost (the gap is looked for again), and a roll-forward that waited for
a purge does not sum the Events the purge deleted.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from auth_helpers import exchange
from server_helpers import Raw, SiteApp, make_site_app

from harness.databases import scratch_database
from harness.probes import libpq_url
from harness.waiting import wait_until
from runner.client import Client
from runner.server.db import Database
from runner.server.process import ServerProcess
from runner.server.services import history_rollup, purge

ALL = "all:yes"
#: bucket counts: with the windows below they give intervals of 1 s to 1 h (the cells
#: answer those of 10 s and more; the finer ones are scanned either way)
BUCKETS = (3, 7, 40, 150, 1000)


def _ran(
    client: Client, sa: SiteApp, t0: datetime, spans: list[tuple[float, float, int, int, bool]]
) -> list[int]:
    """One job per (start, end, num_nodes, node_packing_count, fails): RUNNING at t0 + start
    seconds, then RUN_DONE (or RUN_ERROR with no retries left: FAILED) at t0 + end."""
    jobs = client.jobs.bulk_create(
        [
            {
                "app_id": sa.app.id,
                "resources": {"num_nodes": nodes, "node_packing_count": packing},
                "tags": {"all": "yes", "part": f"p{i % 3}"},
                "retry_limit": 0,
            }
            for i, (_, _, nodes, packing, _) in enumerate(spans)
        ]
    )
    session = client.sessions.create(sa.site.id)
    held = client.sessions.acquire(session.id, max_num_jobs=len(jobs))
    assert {j.id for j in held} == {j.id for j in jobs}
    client.jobs.bulk_update(
        [
            {"id": j.id, "state": "RUNNING", "state_timestamp": t0 + timedelta(seconds=a)}
            for j, (a, _, _, _, _) in zip(jobs, spans, strict=True)
        ],
        returning=False,
    )
    client.jobs.bulk_update(
        [
            {
                "id": j.id,
                "state": "RUN_ERROR" if fails else "RUN_DONE",
                "return_code": 1 if fails else 0,
                "state_timestamp": t0 + timedelta(seconds=b),
            }
            for j, (_, b, _, _, fails) in zip(jobs, spans, strict=True)
        ],
        returning=False,
    )
    client.sessions.delete(session.id)
    return [j.id for j in jobs]


def _spans(rng: random.Random, n: int, lo: float, hi: float) -> list[tuple[float, float, int, int, bool]]:
    out = []
    for _ in range(n):
        a = rng.uniform(lo, hi)
        b = a + rng.choice([rng.uniform(0, 3), rng.uniform(5, 600)])
        packing = rng.choice([1, 1, 2, 4])
        nodes = rng.choice([1, packing, 2, 3])
        out.append((round(a, 6), round(min(b, hi + 600), 6), nodes, packing, rng.random() < 0.2))
    return out


def _windows(rng: random.Random, t0: datetime, end: datetime) -> list[dict[str, str]]:
    """The whole span and random windows, their ends at random microseconds (inside a cell)."""
    out = [{"after": (t0 - timedelta(seconds=30)).isoformat(), "before": end.isoformat()}]
    span = (end - t0).total_seconds()
    for _ in range(3):
        a = rng.uniform(-60, span - 10)
        b = rng.uniform(a + 5, span + 60)
        out.append(
            {
                "after": (t0 + timedelta(seconds=round(a, 6))).isoformat(),
                "before": (t0 + timedelta(seconds=round(b, 6))).isoformat(),
            }
        )
    return out


def _same_as_scan(raw: Raw, windows: list[dict[str, str]], sites: list[int | None]) -> int:
    """Ask each question from the cells and from the scan; both answers must be equal.
    Returns how many answers came from cells of 10 s or more (the rest were scanned twice)."""
    from_cells = 0
    for window in windows:
        for buckets in BUCKETS:
            for site in sites:
                params: dict[str, Any] = {**window, "buckets": buckets}
                if site is not None:
                    params["site_id"] = site
                rolled = raw("GET", "/stats/history", params=params)
                scanned = raw("GET", "/stats/history", params={**params, "tags": ALL})
                assert rolled.status_code == 200, rolled.text
                assert rolled.json() == scanned.json(), params
                from_cells += rolled.json()["interval_sec"] >= 10
    return from_cells


def test_cells_answer_what_the_scan_answers(
    tolu_client: Client, make_user: Callable[[], Client], raw: Raw
) -> None:
    rng = random.Random(12)
    a, b = make_site_app(tolu_client), make_site_app(tolu_client)
    now = datetime.now(UTC)
    t0 = now - timedelta(hours=2, seconds=rng.uniform(0, 10))
    _ran(tolu_client, a, t0, _spans(rng, 40, 0, 5400))
    b_jobs = _ran(tolu_client, b, t0, _spans(rng, 25, 0, 5400))
    # another user at the same times: the cells are per user
    bob = make_user()
    _ran(bob, make_site_app(bob), t0, _spans(rng, 20, 0, 5400))
    end = datetime.now(UTC) + timedelta(seconds=1, microseconds=rng.randrange(10**6))
    windows = _windows(rng, t0, end)
    sites: list[int | None] = [None, a.site.id, b.site.id]
    whole = raw("GET", "/stats/history", params={**windows[0], "buckets": 150}).json()
    assert whole["finished"] + whole["failed"] == 65
    assert max(p["busy_nodes"] for p in whole["points"]) > 0
    assert _same_as_scan(raw, windows, sites) > 0
    assert bob.token is not None
    bob_raw = Raw(bob.url, bob.token)
    _same_as_scan(bob_raw, windows[:2], [None])
    theirs = bob_raw("GET", "/stats/history", params={**windows[0], "buckets": 150}).json()
    assert theirs["finished"] + theirs["failed"] == 20
    bob_raw.session.close()
    # a site's token sees that site's cells: what its owner sees with site_id
    secret = tolu_client.account.create_token("h", scope="site", site_id=a.site.id).token
    site_raw = Raw(tolu_client.url, exchange(tolu_client.url, secret))
    _same_as_scan(site_raw, windows[:2], [None])
    for buckets in (40, 150):
        params = {**windows[0], "buckets": buckets}
        assert (
            site_raw("GET", "/stats/history", params=params).json()
            == raw("GET", "/stats/history", params={**params, "site_id": a.site.id}).json()
        )
    site_raw.session.close()

    # a launcher back after an outage reports old changes: new ids, timestamps before
    # everything summed so far (and some inside it)
    late = _ran(tolu_client, a, t0 - timedelta(minutes=20), _spans(rng, 15, 0, 3000))
    windows[0]["after"] = (t0 - timedelta(minutes=30)).isoformat()
    _same_as_scan(raw, windows, sites)

    # the newest Events go with their jobs; SQLite hands their ids out again to the next ones
    for job_id in late:
        tolu_client.jobs.delete(job_id)
    _ran(tolu_client, a, t0, _spans(rng, 5, 0, 3000))
    _same_as_scan(raw, windows, sites)

    # deleted jobs take their Events with them; a job's nodes change after it ran
    for job_id in b_jobs[:10]:
        tolu_client.jobs.delete(job_id)
    tolu_client.jobs.update(b_jobs[12], resources={"num_nodes": 7, "node_packing_count": 2})
    tolu_client.jobs.update(b_jobs[13], resources={"num_nodes": 1, "node_packing_count": 1})
    _same_as_scan(raw, windows, sites)
    assert tolu_client.jobs.delete_where(site_id=b.site.id) == 15
    _same_as_scan(raw, windows, sites)


@pytest.fixture
def two_workers(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[ServerProcess, str]]:
    request.getfixturevalue("postgres_url")  # the harness's PostgreSQL checks (skip / --require)
    with scratch_database("tolu_history") as url:
        server = ServerProcess(tmp_path / "server", database_url=url, workers=2)
        server.start(timeout=90)
        try:
            yield server, url
        finally:
            server.stop()


def test_an_event_that_commits_late_is_not_lost(
    two_workers: tuple[ServerProcess, str], tmp_path: Path
) -> None:
    """PostgreSQL hands out Event ids before it commits them: an id that is not yet
    visible when later ones are rolled up must be summed in when it commits."""
    server, url = two_workers
    Client.register(server.url, "hist", "a-long-password-1")
    client = Client.login(server.url, "hist", "a-long-password-1")
    assert client.token is not None
    raw = Raw(client.url, client.token)
    rng = random.Random(7)
    sa = make_site_app(client)
    t0 = datetime.now(UTC) - timedelta(hours=1)
    ids = _ran(client, sa, t0, _spans(rng, 10, 0, 1800))
    end = datetime.now(UTC) + timedelta(minutes=1)
    windows = _windows(rng, t0, end)

    with psycopg.connect(libpq_url(url)) as held:  # a transaction left open: its id is taken
        row = held.execute(
            "INSERT INTO events (owner_id, site_id, job_id, from_state, to_state, timestamp, data)"
            " SELECT owner_id, site_id, id, 'STAGED_OUT', 'JOB_FINISHED', %s, '{}' FROM jobs WHERE id = %s"
            " RETURNING id",
            (t0.replace(tzinfo=None) + timedelta(seconds=100), ids[0]),
        ).fetchone()
        assert row is not None
        # later ids, rolled up by history requests on either worker meanwhile
        stop = threading.Event()
        errors: list[BaseException] = []

        def ask() -> None:
            try:
                while not stop.is_set():
                    r = raw("GET", "/stats/history", params={**windows[0], "buckets": 60})
                    assert r.status_code == 200, r.text
            except BaseException as exc:  # reported by the test, in its own thread
                errors.append(exc)

        askers = [threading.Thread(target=ask) for _ in range(3)]
        for th in askers:
            th.start()
        _ran(client, sa, t0, _spans(rng, 30, 0, 1800))
        stop.set()
        for th in askers:
            th.join()
        assert not errors, errors
        before = raw("GET", "/stats/history", params={**windows[0], "buckets": 60}).json()
        held.commit()
    after = raw("GET", "/stats/history", params={**windows[0], "buckets": 60}).json()
    assert after["finished"] == before["finished"] + 1
    _same_as_scan(raw, windows, [None, sa.site.id])
    raw.session.close()
    client.close()


def test_a_purge_during_a_roll_forward(two_workers: tuple[ServerProcess, str]) -> None:
    """A roll-forward that waits for a purge to commit must not sum the Events it deleted:
    it reads from a snapshot taken before it waited (PostgreSQL, REPEATABLE READ)."""
    server, url = two_workers
    Client.register(server.url, "purger", "a-long-password-1")
    client = Client.login(server.url, "purger", "a-long-password-1")
    assert client.token is not None
    raw = Raw(client.url, client.token)
    rng = random.Random(3)
    sa = make_site_app(client)
    t0 = datetime.now(UTC) - timedelta(hours=1)
    summed = _ran(client, sa, t0, _spans(rng, 10, 0, 1800))
    windows = _windows(rng, t0, datetime.now(UTC) + timedelta(minutes=1))
    _same_as_scan(raw, windows[:1], [None])  # rolls the first jobs' Events up
    fresh = _ran(client, sa, t0, _spans(rng, 10, 0, 1800))  # Events not rolled up yet

    db = Database(url)
    rolling = threading.Thread(target=history_rollup.catch_up, args=(db,))
    try:
        with db.write() as conn:
            purge.jobs_by_ids(conn, [*summed[:3], *fresh])
            rolling.start()
            with psycopg.connect(libpq_url(url), autocommit=True) as watch:
                wait_until(
                    lambda: (
                        watch.execute(
                            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                            " AND query LIKE '%history_rollup%'"
                        ).fetchone()
                        == (1,)
                    ),
                    timeout=30,
                    what="the roll-forward waiting for the purge's lock",
                )
        rolling.join(timeout=60)
        assert not rolling.is_alive()
    finally:
        db.dispose()
    _same_as_scan(raw, windows, [None])
    raw.session.close()
    client.close()
