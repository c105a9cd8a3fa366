"""/events/stream: a user's Events live over a WebSocket, by cursor, resumable without
gaps, batched, across server processes; and the feed behind it, which waits for ids
that commit late (PostgreSQL) and gives up those that never come."""

from __future__ import annotations

import contextlib
import json
import secrets
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from server_helpers import make_site_app
from sqlalchemy import create_engine, text
from websockets.sync.client import ClientConnection, connect

from harness.fixtures_server import ServerHandle
from runner.client import Client
from runner.server import schema
from runner.server.db import Database
from runner.server.services.event_feed import EventFeed, latest_id

TIMEOUT = 60.0


def ws_url(http_url: str) -> str:
    return http_url.replace("http://", "ws://", 1) + "/events/stream"


@pytest.fixture
def open_stream(tolu_server: ServerHandle) -> Iterator[Callable[..., ClientConnection]]:
    with contextlib.ExitStack() as opened:

        def open_(token: str, cursor: int | None = None, url: str | None = None) -> ClientConnection:
            ws = opened.enter_context(connect(ws_url(url or tolu_server.url), open_timeout=TIMEOUT))
            ws.send(json.dumps({"type": "hello", "token": token, "cursor": cursor}))
            return ws

        yield open_


def receive(ws: ClientConnection) -> dict[str, Any]:
    message: dict[str, Any] = json.loads(ws.recv(timeout=TIMEOUT))
    return message


def collect(ws: ClientConnection, want: set[int]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Read messages until every Event id in ``want`` came; (events in order received, messages)."""
    events: list[dict[str, Any]] = []
    messages: list[dict[str, Any]] = []
    while not want <= {e["id"] for e in events}:
        msg = receive(ws)
        messages.append(msg)
        assert msg["type"] in ("events", "idle"), msg
        events.extend(msg.get("events", []))
    return events, messages


def event_ids(client: Client, job_ids: list[int]) -> set[int]:
    return {e.id for e in client.events.filter(job_id=job_ids, limit=10_000)}


def test_own_events_live_and_resumed_after_a_reconnect(
    tolu_client: Client, make_user: Callable[[], Client], open_stream: Callable[..., ClientConnection]
) -> None:
    assert tolu_client.token is not None
    sa = make_site_app(tolu_client)
    ws = open_stream(tolu_client.token)
    ready = receive(ws)
    assert ready["type"] == "ready" and ready["username"] == tolu_client.username
    first = tolu_client.jobs.bulk_create([{"app_id": sa.app.id} for _ in range(3)])
    want = event_ids(tolu_client, [j.id for j in first])
    assert len(want) == 9  # CREATED, STAGED_IN, PREPROCESSED each
    got, messages = collect(ws, want)
    assert [e["id"] for e in got] == sorted(want)
    assert {e["to_state"] for e in got} == {"CREATED", "STAGED_IN", "PREPROCESSED"}
    assert set(got[0]) == {"id", "job_id", "site_id", "from_state", "to_state", "timestamp"}
    cursor = messages[-1]["cursor"]
    assert cursor >= max(want)
    ws.close()

    # while nobody listens: this user's jobs change, and another user's jobs appear
    tolu_client.jobs.bulk_update([{"id": first[0].id, "state": "KILLED"}])
    second = tolu_client.jobs.bulk_create([{"app_id": sa.app.id} for _ in range(2)])
    bob = make_user()
    bob_sa = make_site_app(bob)
    bob_jobs = bob.jobs.bulk_create([{"app_id": bob_sa.app.id}])
    missed = event_ids(tolu_client, [first[0].id] + [j.id for j in second]) - want

    again = open_stream(tolu_client.token, cursor)
    assert receive(again)["type"] == "ready"
    got, _ = collect(again, missed)
    assert {e["id"] for e in got} == missed  # nothing lost, nothing of bob's, nothing from before
    assert not {e["job_id"] for e in got} & {j.id for j in bob_jobs}

    # bob's own stream from the same cursor has only his
    assert bob.token is not None
    theirs = open_stream(bob.token, cursor)
    assert receive(theirs)["type"] == "ready"
    got, _ = collect(theirs, event_ids(bob, [j.id for j in bob_jobs]))
    assert {e["job_id"] for e in got} == {bob_jobs[0].id}


def test_thousands_of_changes_arrive_in_a_few_messages(
    tolu_client: Client, open_stream: Callable[..., ClientConnection]
) -> None:
    assert tolu_client.token is not None
    sa = make_site_app(tolu_client)
    ws = open_stream(tolu_client.token)
    assert receive(ws)["type"] == "ready"
    jobs = tolu_client.jobs.bulk_create([{"app_id": sa.app.id} for _ in range(3_000)])
    want = event_ids(tolu_client, [j.id for j in jobs])
    assert len(want) == 9_000
    got, messages = collect(ws, want)
    ids = [e["id"] for e in got]
    assert len(ids) == len(set(ids)) == 9_000
    assert ids == sorted(ids)
    # at most 5,000 Events a message: two carry 9,000 (a poll may catch the commit in between)
    assert len([m for m in messages if m["type"] == "events"]) <= 3


@pytest.mark.parametrize(
    ("hello", "code", "loc"),
    [
        ({"type": "hello", "token": "not-a-token"}, 4401, None),
        ({"type": "hello", "token": "x", "cursor": -1}, 4422, ["cursor"]),
        ({"type": "hello", "token": "x", "cursor": "last"}, 4422, ["cursor"]),
        ({"type": "hello"}, 4422, ["token"]),
        ({"type": "hello", "token": "x", "colour": 1}, 4422, ["colour"]),
        ("not json", 4422, None),
    ],
)
def test_a_bad_hello_is_refused_with_the_reason(
    tolu_server: ServerHandle, hello: Any, code: int, loc: list[str] | None
) -> None:
    with connect(ws_url(tolu_server.url), open_timeout=TIMEOUT) as ws:
        ws.send(hello if isinstance(hello, str) else json.dumps(hello))
        error = receive(ws)
        assert error["type"] == "error"
        if loc is not None:
            assert [e["loc"] for e in error["detail"]] == [loc]
        with pytest.raises(Exception) as closed:
            ws.recv(timeout=TIMEOUT)
        assert getattr(closed.value, "rcvd", None) is not None and closed.value.rcvd.code == code  # type: ignore[attr-defined]


def test_a_second_server_process_sees_the_same_stream(
    tolu_server: ServerHandle,
    open_stream: Callable[..., ClientConnection],
    request: pytest.FixtureRequest,
    tmp_path: Path,
) -> None:
    """Two server processes on one database (as ``--workers 2`` runs them): a change made
    through one reaches a stream served by the other, with no message between them."""
    if tolu_server.mode != "process" or tolu_server.data_dir is None:
        pytest.skip("needs a server process of the harness (its database)")
    from runner.server.process import ServerProcess

    url = (
        request.getfixturevalue("postgres_url")
        if tolu_server.database == "postgresql"
        else f"sqlite:///{tolu_server.data_dir / 'tolu.db'}"
    )
    other = ServerProcess(tmp_path / "second", database_url=url)
    other.start(timeout=90)
    try:
        # one user; each server signs its own tokens
        name, password = f"two-{uuid.uuid4().hex[:8]}", secrets.token_urlsafe(12)
        Client.register(other.url, name, password)
        via_first = Client.login(tolu_server.url, name, password)
        via_second = Client.login(other.url, name, password)
        assert via_second.token is not None
        ws = open_stream(via_second.token, url=other.url)
        assert receive(ws)["type"] == "ready"
        sa = make_site_app(via_first)
        jobs = via_first.jobs.bulk_create([{"app_id": sa.app.id} for _ in range(5)])
        want = event_ids(via_first, [j.id for j in jobs])
        got, _ = collect(ws, want)
        assert {e["id"] for e in got} == want
        via_first.close()
        via_second.close()
    finally:
        other.stop()


# ---------------------------------------------------------------- the feed


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


INSERT = text(
    "INSERT INTO events (owner_id, site_id, job_id, from_state, to_state, timestamp, data) "
    "VALUES (:owner, 1, :job, NULL, 'CREATED', :ts, '{}')"
)


def _insert(conn: Any, owner: int, job: int) -> int:
    conn.execute(INSERT, {"owner": owner, "job": job, "ts": datetime.now(UTC).replace(tzinfo=None)})
    return int(conn.execute(text("SELECT max(id) FROM events")).scalar())


@pytest.fixture
def feed_db(scratch_url: str) -> Iterator[Database]:
    db = Database(scratch_url)
    schema.ensure_current(db.engine, migrate=True)
    yield db
    db.dispose()


def test_the_feed_gives_up_an_id_that_never_comes(feed_db: Database) -> None:
    with feed_db.write() as conn:
        a = _insert(conn, 1, 1)
        b = _insert(conn, 1, 2)
        c = _insert(conn, 2, 3)  # another user's: never returned, but its id counts
        d = _insert(conn, 1, 4)
        conn.execute(text("DELETE FROM events WHERE id = :b"), {"b": b})  # purged: a hole for good
    clock = Clock()
    feed = EventFeed(owner_id=1, cursor=a - 1, gap_timeout=30, clock=clock)
    with feed_db.read() as conn:
        events, more = feed.poll(conn)
    assert [e["id"] for e in events] == [a, d] and not more
    assert feed.settled == a  # b may still commit
    clock.now = 31
    with feed_db.read() as conn:
        assert feed.poll(conn)[0] == []
        assert latest_id(conn) == d
    assert feed.settled == d > c  # given up; the cursor moves past it


@pytest.mark.databases("postgresql")  # SQLite's writers take turns: ids become visible in order
def test_the_feed_returns_an_id_that_commits_late(feed_db: Database) -> None:
    """PostgreSQL hands out ids at insert and shows rows at commit: a transaction that
    inserted first may commit last. The feed must not skip it."""
    engine = create_engine(feed_db.url)
    with feed_db.write() as conn:
        start = _insert(conn, 1, 1)
    feed = EventFeed(owner_id=1, cursor=start, clock=Clock())
    slow = engine.connect()
    slow_tx = slow.begin()
    late = _insert(slow, 1, 2)  # id taken, not committed
    with feed_db.write() as conn:
        early = _insert(conn, 1, 3)
    assert early > late
    with feed_db.read() as conn:
        events, _ = feed.poll(conn)
    assert [e["id"] for e in events] == [early]
    assert feed.settled == late - 1  # a reconnect resumes before the open transaction
    slow_tx.commit()
    slow.close()
    with feed_db.read() as conn:
        events, _ = feed.poll(conn)
    assert [e["id"] for e in events] == [late]
    assert feed.settled == early
    engine.dispose()


def test_a_site_token_streams_only_its_site(
    tolu_server: ServerHandle, tolu_client: Client, open_stream: Callable[..., ClientConnection]
) -> None:
    from auth_helpers import create_token, exchange

    assert tolu_client.token is not None
    one, two = make_site_app(tolu_client), make_site_app(tolu_client)
    made = create_token(tolu_server.url, tolu_client.token, scope="site", site_id=one.site.id)
    ws = open_stream(exchange(tolu_server.url, made["token"]))
    assert receive(ws)["type"] == "ready"
    theirs = tolu_client.jobs.bulk_create([{"app_id": two.app.id} for _ in range(3)])
    ours = tolu_client.jobs.bulk_create([{"app_id": one.app.id} for _ in range(2)])
    got, _ = collect(ws, event_ids(tolu_client, [j.id for j in ours]))
    assert {e["site_id"] for e in got} == {one.site.id}
    assert not {e["job_id"] for e in got} & {j.id for j in theirs}


def test_a_renewed_token_keeps_the_stream_and_a_revoked_one_ends_it(
    tolu_server: ServerHandle,
    tolu_client: Client,
    open_stream: Callable[..., ClientConnection],
) -> None:
    """A client renews its short-lived token on the open stream; a revoked grant is refused
    as at any request."""
    from auth_helpers import create_token, exchange, revoke

    assert tolu_client.token is not None
    sa = make_site_app(tolu_client)
    made = create_token(tolu_server.url, tolu_client.token, scope="read")
    access = exchange(tolu_server.url, made["token"])
    ws = open_stream(access)
    assert receive(ws)["type"] == "ready"
    ws.send(json.dumps({"type": "token", "token": exchange(tolu_server.url, made["token"])}))
    jobs = tolu_client.jobs.bulk_create([{"app_id": sa.app.id}])
    got, _ = collect(ws, event_ids(tolu_client, [j.id for j in jobs]))
    assert {e["job_id"] for e in got} == {jobs[0].id}

    revoke(tolu_server.url, tolu_client.token, made["id"])
    refused = open_stream(access)
    error = receive(refused)
    assert error["type"] == "error" and "revoked" in json.dumps(error).lower()
