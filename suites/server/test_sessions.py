"""Launcher sessions: acquisition that fits, heartbeats, expiry, and many processes
acquiring at once never getting the same job."""

from __future__ import annotations

import multiprocessing
import sqlite3
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from server_helpers import SiteApp

from harness.waiting import wait_until
from runner.client import Client
from runner.client.errors import NotFound
from runner.models import AcquireSpec, Job
from runner.server import schema
from runner.server import tables as t
from runner.server.auth.principal import Principal
from runner.server.db import Database, make_engine, utcnow
from runner.server.errors import NotFound as ServerNotFound
from runner.server.services import sessions
from runner.states import JobState

S = JobState


def _wait_for(client: Client, job_id: int, state: JobState, timeout: float = 20.0) -> Job:
    return wait_until(
        lambda: client.jobs.get(job_id),
        check=lambda job: job.state is state,
        timeout=timeout,
        interval=0.2,
        what=f"job {job_id} in {state}",
    )


def test_acquire_takes_what_fits_largest_first(tolu_client: Client, site_app: SiteApp) -> None:
    a = site_app.app.id
    made = tolu_client.jobs.bulk_create(
        [
            {"app_id": a, "resources": {"num_nodes": 4}, "tags": {"k": "big"}},
            {"app_id": a, "resources": {"num_nodes": 2}},
            {"app_id": a, "resources": {"num_nodes": 1, "node_packing_count": 4}},
            {"app_id": a, "resources": {"num_nodes": 1, "node_packing_count": 4}},
            {"app_id": a, "resources": {"num_nodes": 1, "ranks_per_node": 8}},
            {"app_id": a, "resources": {"num_nodes": 1, "wall_time_min": 120}},
        ]
    )
    big, two, small1, small2, mpi, long = made
    s = tolu_client.sessions.create(site_app.site.id)
    got = tolu_client.sessions.acquire(
        s.id, max_num_jobs=10, max_nodes_per_job=2, max_aggregate_nodes=2.5, max_wall_time_min=60
    )
    assert [j.id for j in got] == [two.id, small1.id, small2.id]
    assert all(j.session_id == s.id for j in got)
    assert [j.id for j in tolu_client.sessions.acquire(s.id, max_num_jobs=10, serial_only=True)] == [long.id]
    assert [j.id for j in tolu_client.sessions.acquire(s.id, max_num_jobs=10, filter_tags={"k": "big"})] == [
        big.id
    ]
    assert [j.id for j in tolu_client.sessions.acquire(s.id, max_num_jobs=10)] == [mpi.id]
    assert tolu_client.sessions.acquire(s.id, max_num_jobs=10) == []
    assert {j.id for j in tolu_client.jobs.filter(session_id=s.id)} == {j.id for j in made}


@pytest.mark.parametrize("budget", [None, 10.0], ids=["serial", "node-budget"])
def test_an_acquire_sent_again_with_its_request_id_gets_its_own_jobs_again(
    tolu_client: Client, site_app: SiteApp, budget: float | None
) -> None:
    """The retry of an acquire whose answer was lost (same request_id) gets that
    acquire's jobs, not more; a new request_id, or none, takes more."""
    made = tolu_client.jobs.bulk_create([{"app_id": site_app.app.id}] * 6)
    s = tolu_client.sessions.create(site_app.site.id)
    ask = lambda request_id: [  # noqa: E731
        j.id
        for j in tolu_client.sessions.acquire(
            s.id, max_num_jobs=2, max_aggregate_nodes=budget, request_id=request_id
        )
    ]
    first = ask("a1")
    assert first == [made[0].id, made[1].id]
    assert ask("a1") == first  # its answer was lost: the same jobs, nothing more held
    assert {j.id for j in tolu_client.jobs.filter(session_id=s.id)} == set(first)
    # a job of the lost answer that started meanwhile is not handed out again
    tolu_client.jobs.update(first[0], state="RUNNING")
    assert ask("a1") == [first[1]]
    assert ask("a2") == [made[2].id, made[3].id]
    assert ask(None) == [made[4].id, made[5].id]
    assert ask(None) == []
    # an empty answer lost is empty again: a job created since waits for the next acquire
    assert ask("a3") == []
    (late,) = tolu_client.jobs.bulk_create([{"app_id": site_app.app.id}])
    assert ask("a3") == []
    # the key is the session's own: another session's same key takes what is free
    other = tolu_client.sessions.create(site_app.site.id)
    theirs = tolu_client.sessions.acquire(other.id, max_num_jobs=2, request_id="a3")
    assert [j.id for j in theirs] == [late.id]


def test_a_node_budget_takes_every_job_that_fits_when_it_spans_many_pages(
    tolu_client: Client, site_app: SiteApp
) -> None:
    """Candidates are read a page at a time, a page of about what fits: jobs that share
    nodes 64 to a node fill a budget of 2 nodes with 128 of them, more than one page."""
    a = site_app.app.id
    whole = tolu_client.jobs.bulk_create([{"app_id": a, "resources": {"num_nodes": 2}}] * 3)
    packed = tolu_client.jobs.bulk_create([{"app_id": a, "resources": {"node_packing_count": 64}}] * 200)
    s = tolu_client.sessions.create(site_app.site.id)
    budget = {"max_num_jobs": 1000, "max_nodes_per_job": 2, "max_aggregate_nodes": 2.0}
    # largest first: one 2-node job takes the whole budget
    assert [j.id for j in tolu_client.sessions.acquire(s.id, **budget)] == [whole[0].id]
    got = tolu_client.sessions.acquire(s.id, **{**budget, "max_aggregate_nodes": 2.5})
    assert [j.id for j in got] == [whole[1].id] + [j.id for j in packed[:32]]
    got = tolu_client.sessions.acquire(s.id, **{**budget, "max_nodes_per_job": 1})
    assert [j.id for j in got] == [j.id for j in packed[32:160]]
    got = tolu_client.sessions.acquire(s.id, **{**budget, "max_num_jobs": 30, "max_nodes_per_job": 1})
    assert [j.id for j in got] == [j.id for j in packed[160:190]]


def test_a_tagged_acquire_takes_its_oldest_jobs_behind_a_backlog_of_other_tags(
    tolu_client: Client, site_app: SiteApp
) -> None:
    """Serial-mode acquires with a tag filter walk the queue and the tag's own jobs in
    turns: they find the tag's jobs behind 2,500 runnable jobs of another tag and past
    1,200 of its own that another session holds, oldest first, a step at a time."""
    a = site_app.app.id

    def make(n: int, **tags: str) -> list[int]:
        return [j.id for j in tolu_client.jobs.bulk_create([{"app_id": a, "tags": tags}] * n)]

    held = make(1200, run="mine", part="0")
    other = make(1500, run="other")
    mine = make(150, run="mine", part="1")
    other += make(1000, run="other")
    mine += make(150, run="mine", part="2")
    holder = tolu_client.sessions.create(site_app.site.id)
    assert [j.id for j in tolu_client.sessions.acquire(holder.id, max_num_jobs=1200)] == held
    s = tolu_client.sessions.create(site_app.site.id)
    serial = {"serial_only": True, "max_nodes_per_job": 1}
    got: list[int] = []
    while batch := tolu_client.sessions.acquire(s.id, max_num_jobs=40, filter_tags={"run": "mine"}, **serial):
        assert len(batch) == 40 or len(got) + len(batch) == len(mine)
        got += [j.id for j in batch]
    assert got == mine
    # two tags: the first one's jobs are walked, the second is asked of each
    tolu_client.sessions.delete(s.id)
    s = tolu_client.sessions.create(site_app.site.id)
    def acquire(n: int, **tags: str) -> list[int]:
        return [j.id for j in tolu_client.sessions.acquire(s.id, max_num_jobs=n, filter_tags=tags, **serial)]

    assert acquire(1000, run="mine", part="2") == mine[150:]
    assert acquire(10, run="none") == []
    # jobs of the other tag wait untouched, in order, for an acquire that asks for them
    assert acquire(3, run="other") == other[:3]


def test_deleting_a_session_times_out_running_jobs_and_releases_the_rest(
    tolu_client: Client, site_app: SiteApp
) -> None:
    running, held = tolu_client.jobs.bulk_create([{"app_id": site_app.app.id}] * 2)
    s = tolu_client.sessions.create(site_app.site.id)
    assert len(tolu_client.sessions.acquire(s.id, max_num_jobs=2)) == 2
    tolu_client.jobs.update(running.id, state="RUNNING")
    tolu_client.sessions.delete(s.id)
    r, h = tolu_client.jobs.get(running.id), tolu_client.jobs.get(held.id)
    assert r.state is S.RESTART_READY and r.retry_count == 1 and r.session_id is None
    assert h.state is S.PREPROCESSED and h.session_id is None
    states = [e.to_state for e in tolu_client.events.filter(job_id=running.id)]
    assert states[-2:] == [S.RUN_TIMEOUT, S.RESTART_READY]
    # and they can be acquired again
    s2 = tolu_client.sessions.create(site_app.site.id)
    assert {j.id for j in tolu_client.sessions.acquire(s2.id, max_num_jobs=5)} == {running.id, held.id}


def test_an_expired_session_releases_its_jobs(tolu_client: Client, site_app: SiteApp) -> None:
    (job,) = tolu_client.jobs.bulk_create([{"app_id": site_app.app.id}])
    s = tolu_client.sessions.create(site_app.site.id, ttl_sec=1)
    tolu_client.sessions.acquire(s.id, max_num_jobs=1)
    tolu_client.jobs.update(job.id, state="RUNNING")
    # no heartbeat: the server's background check ends the session
    job = _wait_for(tolu_client, job.id, S.RESTART_READY)
    assert job.state is S.RESTART_READY and job.session_id is None
    reason = next(e for e in tolu_client.events.filter(job_id=job.id) if e.to_state is S.RUN_TIMEOUT)
    assert "expired" in reason.data["reason"]
    try:
        tolu_client.sessions.heartbeat(s.id)
        raise AssertionError("heartbeat on an expired session must be 404")
    except NotFound:
        pass


def test_a_session_past_its_ttl_is_not_found_before_the_background_check_ends_it(tmp_path: Path) -> None:
    """A heartbeat or acquire reads its own session only (not a sweep of every session):
    one past its ttl is not found, and not revived, though still there until the
    background check (``sessions.expire``) ends it; after the server's database came
    back (``up_since``), a session has its whole ttl to beat in."""
    path = tmp_path / "sessions.db"
    engine = make_engine(f"sqlite:///{path}")
    schema.upgrade(engine)
    engine.dispose()
    with sqlite3.connect(path) as raw:  # sessions of user 1 at site 1 (no users or sites needed)
        raw.execute("PRAGMA foreign_keys=OFF")
        raw.executemany(
            "INSERT INTO sessions (id, owner_id, site_id, heartbeat, expires_at, ttl_sec)"
            " VALUES (?, 1, 1, '2026-01-01', ?, 60)",
            [(1, "2026-01-01 00:01:00"), (2, "2999-01-01 00:00:00")],
        )
    db = Database(f"sqlite:///{path}")
    who = Principal(user_id=1, username="u")
    long_up = datetime(2026, 1, 1)
    try:
        for ask in (
            lambda conn: sessions.heartbeat(conn, who, 1, up_since=long_up),
            lambda conn: sessions.acquire(conn, db, who, 1, AcquireSpec(max_num_jobs=1), up_since=long_up),
        ):
            with pytest.raises(ServerNotFound, match="session 1 not found"), db.write() as conn:
                ask(conn)
        with db.read() as conn:
            still = sessions.get_row(conn, who, 1)
        assert still["expires_at"] == datetime(2026, 1, 1, 0, 1)  # not revived, not ended yet
        with db.write() as conn:
            assert sessions.heartbeat(conn, who, 2, up_since=long_up)["expires_at"] < datetime(2999, 1, 1)
            # the database just came back: session 1 has its ttl to beat in
            assert sessions.heartbeat(conn, who, 1, up_since=utcnow())["expires_at"] > utcnow()
        with db.write() as conn:
            past = t.sessions.update().where(t.sessions.c.id == 1).values(expires_at=datetime(2026, 1, 1))
            conn.execute(past)
            assert sessions.expire(conn, up_since=long_up) == 1  # the background check's turn
        with pytest.raises(ServerNotFound), db.read() as conn:
            sessions.get_row(conn, who, 1)
    finally:
        db.dispose()


def test_heartbeat_keeps_a_session_alive(tolu_client: Client, site_app: SiteApp) -> None:
    s = tolu_client.sessions.create(site_app.site.id, ttl_sec=2)
    # a beat every second until the session has lived twice its ttl: by the server's
    # clock, not ours
    twice = s.expires_at + timedelta(seconds=s.ttl_sec)
    beat = wait_until(
        lambda: tolu_client.sessions.heartbeat(s.id),
        check=lambda b: b.heartbeat > twice,
        timeout=60,
        interval=1.0,
        what="the session to outlive twice its ttl",
    )
    assert beat.expires_at == beat.heartbeat + timedelta(seconds=s.ttl_sec)
    # the answer is the row as stored
    assert tolu_client.sessions.filter() == [beat]


def _acquirer(url: str, token: str, site_id: int, how: dict[str, Any], out: Any) -> None:
    client = Client(url, token)
    session = client.sessions.create(site_id)
    mine: list[int] = []
    while True:
        got = client.sessions.acquire(session.id, max_num_jobs=7, **how)
        if not got:
            break
        client.jobs.bulk_update([{"id": j.id, "state": "RUNNING"} for j in got])
        mine.extend(j.id for j in got)
    out.put((session.id, mine))


@pytest.mark.parametrize("tagged", [False, True], ids=["any", "tag-filter"])
def test_concurrent_acquirers_never_share_a_job(tolu_client: Client, site_app: SiteApp, tagged: bool) -> None:
    how: dict[str, Any] = {}
    if tagged:
        # serial-mode acquires with a tag, behind a backlog of another tag's jobs
        tolu_client.jobs.bulk_create([{"app_id": site_app.app.id, "tags": {"run": "other"}}] * 1500)
        how = {"serial_only": True, "filter_tags": {"run": "x"}}
    jobs = tolu_client.jobs.bulk_create([{"app_id": site_app.app.id, "tags": {"run": "x"}}] * 300)
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    assert tolu_client.token is not None
    procs = [
        ctx.Process(target=_acquirer, args=(tolu_client.url, tolu_client.token, site_app.site.id, how, out))
        for _ in range(4)
    ]
    for p in procs:
        p.start()
    results = [out.get(timeout=180) for _ in procs]
    for p in procs:
        p.join(timeout=30)
        assert p.exitcode == 0
    taken = [job_id for _, ids in results for job_id in ids]
    assert len(taken) == len(set(taken)), "a job was handed to two sessions"
    assert set(taken) == {j.id for j in jobs}
    owner = {job_id: sid for sid, ids in results for job_id in ids}
    for job in tolu_client.jobs.filter(id=[j.id for j in jobs]):
        assert job.state is S.RUNNING and job.session_id == owner[job.id]
