"""The hot path's statements as SQLite plans them in a young database: before any
statistics, its planner guesses, and a guess that walks an index of every job of the
owner instead of the few ids asked for costs time that grows with the table (see
docs/performance.md, "The jobs a report names, looked up by their ids")."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, text
from sqlalchemy.dialects import sqlite

from runner.models import AcquireSpec
from runner.server import schema
from runner.server.auth.principal import Principal
from runner.server.db import Database, make_engine
from runner.server.lifecycle import recs_query
from runner.server.services import sessions


def plan(url: str, sql: str) -> list[str]:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return [row[3] for row in conn.execute(text("EXPLAIN QUERY PLAN " + sql))]
    finally:
        engine.dispose()


def test_the_jobs_a_report_names_are_looked_up_by_their_ids(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'young.db'}"
    engine = make_engine(url)
    schema.upgrade(engine)
    engine.dispose()
    for owner_id, site_id in ((7, None), (7, 3), (None, 3)):
        stmt = recs_query(True, owner_id is not None, site_id is not None).params(
            ids=[11, 12, 13], owner=owner_id, site=site_id
        )
        sql = str(stmt.compile(dialect=sqlite.dialect(), compile_kwargs={"literal_binds": True}))
        steps = plan(url, sql)
        assert "SEARCH jobs USING INTEGER PRIMARY KEY (rowid=?)" in steps, steps
        assert not any("INDEX ix_jobs" in step for step in steps), steps


@pytest.mark.parametrize(
    "ask",
    [
        {"serial_only": True, "max_nodes_per_job": 1},
        {"serial_only": True, "max_nodes_per_job": 1, "filter_tags": {"run": "a", "part": "b"}},
        {"max_nodes_per_job": 1},
    ],
    ids=["serial", "serial-tagged", "one-node"],
)
def test_a_serial_acquire_reads_the_free_to_run_index_in_its_order(
    tmp_path: Path, ask: dict[str, Any]
) -> None:
    """A serial-mode launcher asks for one node and one rank per job: read as ``num_nodes
    <= 1`` beside ``num_nodes = 1``, SQLite took the range and sorted every job free to run
    at each acquire (docs/performance.md, "An acquire that sorted the whole queue")."""
    path = tmp_path / "young.db"
    engine = make_engine(f"sqlite:///{path}")
    schema.upgrade(engine)
    engine.dispose()
    with sqlite3.connect(path) as raw:  # a session of user 1 at site 1 (no users or sites needed)
        raw.execute("PRAGMA foreign_keys=OFF")
        raw.execute(
            "INSERT INTO sessions (id, owner_id, site_id, heartbeat, expires_at, ttl_sec)"
            " VALUES (1, 1, 1, '2026-01-01', '2999-01-01', 60)"
        )
    db = Database(f"sqlite:///{path}")
    seen: list[tuple[str, Any]] = []

    def note(conn: Any, cursor: Any, sql: str, params: Any, context: Any, many: bool) -> None:
        seen.append((sql, params))

    try:
        with db.write() as conn:
            event.listen(db.engine, "before_cursor_execute", note)
            who = Principal(user_id=1, username="u")
            got = sessions.acquire(conn, db, who, 1, AcquireSpec(max_num_jobs=10, **ask))
            event.remove(db.engine, "before_cursor_execute", note)
            assert got == b"[]"
            steps = [step for sql, p in seen if "FROM jobs" in sql for step in explain(conn, sql, p)]
    finally:
        db.dispose()
    on_index = [s for s in steps if "ix_jobs_free_to_run" in s]
    assert on_index and all("num_nodes=?" in s for s in on_index), steps
    assert not any("TEMP B-TREE" in s for s in steps), steps


def explain(conn: Any, sql: str, params: Any) -> list[str]:
    return [row[3] for row in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + sql, params)]
