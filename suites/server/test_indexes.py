"""``tolu server indexes``: the live database's indexes against the ones tables.py declares,
on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

from sqlalchemy import text

from runner.server import indexes, schema
from runner.server.db import make_engine


def tolu_indexes(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "runner.cli.main", "server", "indexes", "--database-url", url, *args],
        capture_output=True,
        text=True,
        timeout=180,
        env={k: v for k, v in os.environ.items() if k != "TOLU_DATABASE_URL"},
    )


def by_name(out: str) -> dict[str, dict[str, Any]]:
    return {i["name"]: i for i in json.loads(out)["indexes"]}


def test_a_migrated_database_has_exactly_the_declared_indexes(scratch_url: str) -> None:
    engine = make_engine(scratch_url)
    schema.upgrade(engine)
    engine.dispose()
    listed = tolu_indexes(scratch_url)
    assert listed.returncode == 0, listed.stderr
    assert (
        "ix_jobs_owner_id_idempotency_key" in listed.stdout and "idempotency_key is not null" in listed.stdout
    )
    found = by_name(tolu_indexes(scratch_url, "--json").stdout)
    assert {n for n, i in found.items() if i["status"] == "ok"} == {i.name for i in indexes.declared()}
    assert found["ix_jobs_session_id"]["where"] == "session_id is not null"
    assert found["uq_sites_owner_id_name"]["unique"] and found["uq_sites_owner_id_name"]["columns"] == [
        "owner_id",
        "name",
    ]
    if scratch_url.startswith("postgresql"):
        assert isinstance(found["ix_jobs_owner_id_state"]["size_bytes"], int)


def test_drift_is_reported_and_exits_1(scratch_url: str) -> None:
    engine = make_engine(scratch_url)
    schema.upgrade(engine)
    with engine.begin() as conn:
        conn.execute(text("DROP INDEX ix_events_job_id"))
        conn.execute(text("CREATE INDEX ix_jobs_by_hand ON jobs (app_id)"))
        conn.execute(text("DROP INDEX ix_jobs_session_id"))
        conn.execute(text("CREATE INDEX ix_jobs_session_id ON jobs (session_id)"))  # no longer partial
    engine.dispose()
    listed = tolu_indexes(scratch_url, "--json")
    assert listed.returncode == 1
    assert "3 of" in listed.stderr and "indexes differ" in listed.stderr
    found = by_name(listed.stdout)
    assert found["ix_events_job_id"]["status"] == "missing"
    assert found["ix_jobs_by_hand"]["status"] == "extra" and found["ix_jobs_by_hand"]["columns"] == ["app_id"]
    assert found["ix_jobs_session_id"]["status"] == "differs"
    assert (
        "WHERE - in the database, WHERE session_id is not null declared"
        in found["ix_jobs_session_id"]["difference"]
    )
    assert found["ix_jobs_owner_id_state"]["status"] == "ok"


def test_an_old_schema_is_named_with_the_command_to_run(scratch_url: str) -> None:
    engine = make_engine(scratch_url)
    schema.upgrade(engine, "0005")
    engine.dispose()
    listed = tolu_indexes(scratch_url, "--json")
    assert listed.returncode == 1 and "run `tolu server migrate`" in listed.stderr
    assert by_name(listed.stdout)["ix_jobs_owner_id_idempotency_key"]["status"] == "missing"


def test_no_database_is_one_line(tmp_path: object) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "runner.cli.main", "server", "indexes", "--data-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        env={k: v for k, v in os.environ.items() if k != "TOLU_DATABASE_URL"},
    )
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1 and "no database in" in proc.stderr
