"""Planner statistics after bulk creates (runner/server/db.py ``after_bulk_insert``): on
PostgreSQL a create that is a large part of the jobs table refreshes them before it
answers, so the acquire that follows is not planned for the table as it was."""

from __future__ import annotations

import threading

import psycopg
import pytest
from sqlalchemy import text

from harness.databases import scratch_database
from harness.probes import libpq_url
from runner.client import Client
from runner.server import schema
from runner.server.db import ANALYZE_AFTER_ROWS, QUICK_STATISTICS_TARGET, STALE_FRACTION, Database
from runner.server.process import ServerProcess


def _planner_rows(url: str) -> tuple[float, int]:
    """What PostgreSQL's planner believes the jobs table holds, and how often it was analyzed."""
    with psycopg.connect(libpq_url(url), autocommit=True) as conn:
        row = conn.execute(
            "SELECT c.reltuples, s.analyze_count FROM pg_class c"
            " JOIN pg_stat_user_tables s ON s.relid = c.oid WHERE c.relname = 'jobs'"
        ).fetchone()
    assert row is not None
    return float(row[0]), int(row[1])


def _histogram_bounds(url: str, column: str) -> int | None:
    """How many bounds the histogram of ``jobs.column`` has: the statistics target + 1."""
    with psycopg.connect(libpq_url(url), autocommit=True) as conn:
        row = conn.execute(
            "SELECT array_length(histogram_bounds::text::text[], 1) FROM pg_stats"
            " WHERE tablename = 'jobs' AND attname = %s",
            (column,),
        ).fetchone()
    return None if row is None else row[0]


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


def test_a_large_dag_run_refreshes_statistics_before_it_answers(pg_server: tuple[ServerProcess, str]) -> None:
    """A DAG run of ANALYZE_AFTER_ROWS jobs or more refreshes the tables it filled in its
    own transaction, with the same small sample as a bulk create's refresh."""
    server, url = pg_server
    with psycopg.connect(libpq_url(url), autocommit=True) as conn:
        for table in ("jobs", "job_tags", "job_parents"):
            conn.execute(f"ALTER TABLE {table} SET (autovacuum_enabled = false)")
    Client.register(server.url, "alice", "s3cret-pass")
    alice = Client.login(server.url, "alice", "s3cret-pass")
    site = alice.sites.create(name="s", path="/tmp/s", hostname="localhost")
    alice.apps.create(site_id=site.id, name="true", command_template="/bin/true")
    dag = alice.dags.builder("pair", site=site, parameters={"n": None})
    dag.node("child", app="true", parents=[dag.node("root", app="true")], tags={"n": "{n}"})
    run = alice.dags.run(dag.define(), [{"n": i} for i in range(ANALYZE_AFTER_ROWS // 2)])
    assert run.jobs == ANALYZE_AFTER_ROWS
    rows, analyzed = _planner_rows(url)
    assert (rows, analyzed) == (ANALYZE_AFTER_ROWS, 1), "the planner knows the run's jobs when it answers"
    assert _histogram_bounds(url, "id") == QUICK_STATISTICS_TARGET + 1, "the refresh's small sample"


#: one row per job, every NOT NULL column of jobs given (no server, no API: the race
#: below is between two threads of one server process, driven step by step)
_JOBS = (
    "INSERT INTO jobs (owner_id, site_id, app_id, state, parents, parameters, tags, environment,"
    " workdir, num_nodes, ranks_per_node, threads_per_rank, gpus_per_rank, node_packing_count,"
    " wall_time_min, retry_count, retry_limit, data, has_children, n_stage_in, n_stage_out,"
    " created_at, updated_at)"
    " SELECT 1, 1, 1, 'PREPROCESSED', '[]', '{}', '{}', '{}', 'w/' || i, 1, 1, 1, 0, 1, 0, 0, 0,"
    " '{}', false, 0, 0, now(), now() FROM generate_series(1, :n) AS i"
)


def test_a_refresh_while_a_create_is_uncommitted_leaves_the_create_its_own_refresh(
    request: pytest.FixtureRequest,
) -> None:
    """The session check refreshes every few seconds. Run while a bulk create had noted its
    rows but not committed them, it analyzed a table without them and spent their count,
    so the create answered without a refresh and the next acquire was planned for an empty
    table (an acquire ran for minutes in `tolu bench api --database both`, 2 runs in 8)."""
    request.getfixturevalue("postgres_url")
    with scratch_database("tolu_stats") as url:
        db = Database(url)
        try:
            schema.ensure_current(db.engine, migrate=True)
            with psycopg.connect(libpq_url(url), autocommit=True) as conn:
                conn.execute("ALTER TABLE jobs SET (autovacuum_enabled = false)")
            n = ANALYZE_AFTER_ROWS
            noted, commit = threading.Event(), threading.Event()
            refreshed: list[bool] = []

            def create() -> None:
                with db.write() as conn:
                    conn.execute(text(_JOBS), {"n": n})
                    db.note_inserted(n)
                    noted.set()
                    assert commit.wait(60)
                refreshed.append(db.after_bulk_insert())

            creating = threading.Thread(target=create)
            creating.start()
            assert noted.wait(60)
            assert not db.maintain(), "nothing committed yet: nothing for the session check to refresh"
            commit.set()
            creating.join(60)
            assert refreshed == [True]
            assert _planner_rows(url)[0] == n, "the create's own refresh saw its rows"
            # a quick refresh (QUICK_STATISTICS_TARGET: a small sample, a short histogram),
            # and the pool's connections keep PostgreSQL's default target for the rest
            assert _histogram_bounds(url, "workdir") == QUICK_STATISTICS_TARGET + 1
            with db.engine.connect() as pooled:
                assert pooled.exec_driver_sql("SHOW default_statistics_target").scalar() == "100"
            # and the session check that follows has nothing left to do
            assert not db.maintain()
        finally:
            db.dispose()
