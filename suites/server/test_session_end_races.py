"""A session that ends while a request acts for it (PostgreSQL, where requests run side
by side): the request waits for the end, then answers 404 like any request for a
session that is gone. Never a 500, never a 409, never a write that names the session.

Seen in CI: a launcher's acquire, retried with its request id, read the session, then
its end committed, and the acquire's second look at the session's row found nothing
(500). runner/server/services/sessions.py now locks the session's row first.

The end is a ``DELETE`` left uncommitted in a connection of the test's own (the
session's jobs lose it with it: ``ON DELETE SET NULL``), so the request is caught in
the middle every time; it commits once the request waits on it.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest

from harness.probes import libpq_url
from harness.waiting import wait_until
from runner.client import Client
from runner.client.errors import APIError, ToluError
from runner.models import JobReport
from runner.server.process import ServerProcess
from runner.states import JobState

S = JobState


@contextlib.contextmanager
def _ending(url: str, session_id: int) -> Iterator[Callable[[], None]]:
    """The session's end, begun and not committed; yields what commits it once another
    backend waits on a lock (the request the test sent)."""
    with psycopg.connect(libpq_url(url)) as conn:
        conn.execute("DELETE FROM sessions WHERE id = %s", (session_id,))

        def commit_when_waited_on() -> None:
            with psycopg.connect(libpq_url(url), autocommit=True) as look:
                wait_until(
                    lambda: look.execute(
                        "SELECT count(*) FROM pg_stat_activity"
                        " WHERE datname = current_database() AND wait_event_type = 'Lock'"
                    ).fetchone(),
                    check=lambda row: row is not None and row[0] >= 1,
                    timeout=60, interval=0.02, what="the request waiting for the session's end",
                )  # fmt: skip
            conn.commit()

        yield commit_when_waited_on


def _during_the_end(url: str, session_id: int, request: Callable[[], Any]) -> Any:
    """What ``request`` answered (or raised) when the session ended while it ran."""
    out: list[Any] = []

    def send() -> None:
        try:
            out.append(request())
        except ToluError as exc:
            out.append(exc)

    with _ending(url, session_id) as commit:
        thread = threading.Thread(target=send)
        thread.start()
        commit()
    thread.join(60)
    assert not thread.is_alive() and out
    return out[0]


@pytest.fixture
def alice(pg_server: tuple[ServerProcess, str]) -> tuple[Client, Any, str]:
    """A user with a site and an app on the scratch server (no retries: a 500 must show),
    and the database's URL."""
    server, url = pg_server
    Client.register(server.url, "alice", "s3cret-pass")
    client = Client.login(server.url, "alice", "s3cret-pass").clone(retries=0)
    site = client.sites.create(name="s", path="/tmp/s", hostname="localhost")
    app = client.apps.create(site_id=site.id, name="true", command_template="/bin/true")
    return client, (site, app), url


@pytest.mark.parametrize("request_id", [None, "acquire-1"], ids=["first-ask", "asked-again"])
def test_an_acquire_for_a_session_that_ends_meanwhile_is_answered_404(
    alice: tuple[Client, Any, str], request_id: str | None
) -> None:
    client, (site, app), url = alice
    [job] = client.jobs.bulk_create([{"app_id": app.id}])
    session = client.sessions.create(site.id)
    if request_id is not None:  # the ask whose answer was lost (it found nothing then)
        assert client.sessions.acquire(session.id, max_num_jobs=5, filter_tags={"k": "none"},
                                       request_id=request_id) == []  # fmt: skip
    answer = _during_the_end(
        url, session.id, lambda: client.sessions.acquire(session.id, max_num_jobs=5, request_id=request_id)
    )
    assert isinstance(answer, APIError) and answer.status == 404, answer
    after = client.jobs.get(job.id)
    assert after.session_id is None and after.state is S.PREPROCESSED  # free for the next session


def test_a_report_for_a_session_that_ends_meanwhile_is_answered_404_and_applies_nothing(
    alice: tuple[Client, Any, str],
) -> None:
    client, (site, app), url = alice
    [job] = client.jobs.bulk_create([{"app_id": app.id}])
    session = client.sessions.create(site.id)
    [held] = client.sessions.acquire(session.id, max_num_jobs=1)
    now = datetime.now(UTC)
    running = JobReport(id=held.id, attempt=held.attempt, state=S.RUNNING, timestamp=now)
    client.sessions.report(session.id, [running])
    done = JobReport(id=held.id, attempt=held.attempt, state=S.RUN_DONE, timestamp=now, return_code=0)
    answer = _during_the_end(url, session.id, lambda: client.sessions.report(session.id, [done]))
    assert isinstance(answer, APIError) and answer.status == 404, answer
    after = client.jobs.get(job.id)
    # the end's own DELETE does not time the run out (the server's does): the job is as
    # the report found it, held by nobody, and no report named the session that is gone
    assert (after.state, after.session_id) == (S.RUNNING, None)
