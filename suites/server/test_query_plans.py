"""The hot path's statements as SQLite plans them in a young database: before any
statistics, its planner guesses, and a guess that walks an index of every job of the
owner instead of the few ids asked for costs time that grows with the table (see
docs/performance.md, "The jobs a report names, looked up by their ids")."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import text
from sqlalchemy.dialects import sqlite

from runner.server import schema
from runner.server.db import make_engine
from runner.server.lifecycle import recs_query


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
        stmt = recs_query(True, [11, 12, 13], owner_id, site_id)
        sql = str(stmt.compile(dialect=sqlite.dialect(), compile_kwargs={"literal_binds": True}))
        steps = plan(url, sql)
        assert "SEARCH jobs USING INTEGER PRIMARY KEY (rowid=?)" in steps, steps
        assert not any("INDEX ix_jobs" in step for step in steps), steps
