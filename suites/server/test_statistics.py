"""Planner statistics after bulk creates (runner/server/db.py ``after_bulk_insert``): on
PostgreSQL a create that is a large part of the jobs table refreshes them before it
answers, so the acquire that follows is not planned for the table as it was."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from harness.databases import scratch_database
from harness.probes import libpq_url
from runner.client import Client
from runner.server.db import ANALYZE_AFTER_ROWS, STALE_FRACTION
from runner.server.process import ServerProcess


@pytest.fixture
def pg_server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[ServerProcess, str]]:
    request.getfixturevalue("postgres_url")  # the harness's PostgreSQL checks (skip / --require)
    with scratch_database("tolu_stats") as url:
        server = ServerProcess(tmp_path / "server", database_url=url)
        server.start(timeout=90)
        try:
            yield server, url
        finally:
            server.stop()


def _planner_rows(url: str) -> tuple[float, int]:
    """What PostgreSQL's planner believes the jobs table holds, and how often it was analyzed."""
    with psycopg.connect(libpq_url(url), autocommit=True) as conn:
        row = conn.execute(
            "SELECT c.reltuples, s.analyze_count FROM pg_class c"
            " JOIN pg_stat_user_tables s ON s.relid = c.oid WHERE c.relname = 'jobs'"
        ).fetchone()
    assert row is not None
    return float(row[0]), int(row[1])


def test_a_create_that_is_a_large_part_of_the_table_refreshes_statistics_before_it_answers(
    pg_server: tuple[ServerProcess, str],
) -> None:
    server, url = pg_server
    with psycopg.connect(libpq_url(url), autocommit=True) as conn:
        conn.execute("ALTER TABLE jobs SET (autovacuum_enabled = false)")  # only the server analyzes
    Client.register(server.url, "alice", "s3cret-pass")
    alice = Client.login(server.url, "alice", "s3cret-pass")
    site = alice.sites.create(name="s", path="/tmp/s", hostname="localhost")
    app = alice.apps.create(site_id=site.id, name="true", command_template="/bin/true")

    alice.jobs.bulk_create([{"app_id": app.id}] * ANALYZE_AFTER_ROWS)
    rows, analyzed = _planner_rows(url)
    assert rows == ANALYZE_AFTER_ROWS, "the planner knows the new jobs as soon as the create answered"

    # a create that is a small part of the table leaves it to the periodic refresh
    small = int(STALE_FRACTION * ANALYZE_AFTER_ROWS) - 1
    alice.jobs.bulk_create([{"app_id": app.id}] * small)
    assert _planner_rows(url) == (rows, analyzed)

    # ... until what was inserted since adds up to a large part again
    alice.jobs.bulk_create([{"app_id": app.id}] * (ANALYZE_AFTER_ROWS - small))
    assert _planner_rows(url)[0] == 2 * ANALYZE_AFTER_ROWS
