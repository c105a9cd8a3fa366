"""Schema migrations on SQLite and PostgreSQL, and the server's refusal of a schema
it does not know (older or newer)."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, select, text

from runner.server import schema
from runner.server import tables as t
from runner.server.db import make_engine


def _diff(url: str) -> list[object]:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return list(compare_metadata(MigrationContext.configure(conn), t.metadata))
    finally:
        engine.dispose()


def test_upgrade_from_empty_matches_the_tables(scratch_url: str) -> None:
    engine = make_engine(scratch_url)
    try:
        assert schema.current_revision(engine) is None
        schema.upgrade(engine)
        assert schema.current_revision(engine) == schema.head_revision()
        assert {"jobs", "events", "job_tags", "sessions"} <= set(inspect(engine).get_table_names())
    finally:
        engine.dispose()
    assert _diff(scratch_url) == []


def test_downgrade_upgrade_round_trip(scratch_url: str) -> None:
    engine = make_engine(scratch_url)
    try:
        schema.upgrade(engine)
        schema.downgrade(engine, "-1")
        assert schema.current_revision(engine) not in (None, schema.head_revision())
        schema.downgrade(engine, "base")
        assert schema.current_revision(engine) is None
        assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
        schema.upgrade(engine)
        assert schema.current_revision(engine) == schema.head_revision()
    finally:
        engine.dispose()
    assert _diff(scratch_url) == []


def test_upgrade_from_previous_keeps_rows(scratch_url: str) -> None:
    engine = make_engine(scratch_url)
    try:
        schema.upgrade(engine, "0001")
        with engine.begin() as conn:
            conn.execute(
                t.users.insert().values(username="old", password_hash="x", created_at=datetime.now(UTC))
            )
        schema.upgrade(engine)
        with engine.connect() as conn:
            assert conn.execute(select(t.users.c.username)).scalars().all() == ["old"]
    finally:
        engine.dispose()


def _serve(data_dir: Path, url: str, *extra: str) -> subprocess.CompletedProcess[str]:
    """Run ``python -m runner.server`` just long enough to see whether it refuses."""
    cmd = [
        sys.executable,
        "-m",
        "runner.server",
        "--port",
        "1",
        "--data-dir",
        str(data_dir),
        "--database-url",
        url,
    ]
    return subprocess.run(
        [*cmd, *extra],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_server_refuses_an_older_schema_and_names_the_command(scratch_url: str, tmp_path: Path) -> None:
    engine = make_engine(scratch_url)
    try:
        schema.upgrade(engine, "0001")
    finally:
        engine.dispose()
    result = _serve(tmp_path, scratch_url)
    assert result.returncode == 2, result.stderr
    assert "tolu server migrate" in result.stderr
    assert "0001" in result.stderr


def test_server_refuses_a_newer_schema(scratch_url: str, tmp_path: Path) -> None:
    engine = make_engine(scratch_url)
    try:
        schema.upgrade(engine)
        with engine.begin() as conn:
            conn.execute(text("UPDATE alembic_version SET version_num = 'f00dfeed'"))
    finally:
        engine.dispose()
    result = _serve(tmp_path, scratch_url)
    assert result.returncode == 2, result.stderr
    assert "newer" in result.stderr and "f00dfeed" in result.stderr
    assert "tolu server migrate" in result.stderr


def test_server_refuses_tables_without_a_revision(scratch_url: str, tmp_path: Path) -> None:
    engine = make_engine(scratch_url)
    try:
        with engine.begin() as conn:
            conn.execute(text("CREATE TABLE something_else (id INTEGER PRIMARY KEY)"))
    finally:
        engine.dispose()
    result = _serve(tmp_path, scratch_url)
    assert result.returncode == 2, result.stderr
    assert "tolu server migrate" in result.stderr


def test_ensure_current_migrates_only_when_asked(scratch_url: str) -> None:
    engine = make_engine(scratch_url)
    try:
        schema.upgrade(engine, "0001")
        with pytest.raises(schema.SchemaError, match="tolu server migrate"):
            schema.ensure_current(engine)
        assert schema.ensure_current(engine, migrate=True) == schema.head_revision()
    finally:
        engine.dispose()


def test_cli_migrate_down_and_up(tmp_path: Path) -> None:
    tolu = [sys.executable, "-m", "runner.cli.main", "server", "migrate", "--data-dir", str(tmp_path)]
    env = {**os.environ}
    env.pop("TOLU_DATABASE_URL", None)
    up = subprocess.run(tolu, capture_output=True, text=True, timeout=120, env=env)
    assert up.returncode == 0, up.stderr
    assert f"empty -> {schema.head_revision()}" in up.stdout
    down = subprocess.run([*tolu, "--revision", "-1"], capture_output=True, text=True, timeout=120, env=env)
    assert down.returncode == 0, down.stderr
    assert f"{schema.head_revision()} -> " in down.stdout and "empty" not in down.stdout
    bad = subprocess.run([*tolu, "--revision", "nope"], capture_output=True, text=True, timeout=120, env=env)
    assert bad.returncode != 0
    assert bad.stderr.strip().count("\n") == 0 and "nope" in bad.stderr


def test_an_unusable_database_is_one_line_without_the_password(tmp_path: Path) -> None:
    url = "postgresql+psycopg://tolu:not-the-password@127.0.0.1:1/nodb"
    result = _serve(tmp_path, url)
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("tolu server: cannot use the database"), result.stderr
    assert "not-the-password" not in result.stderr and "127.0.0.1:1" in lines[0]


def test_0005_keeps_accounts_whose_names_differ_only_in_case(scratch_url: str) -> None:
    """Usernames become case-insensitive: the oldest account keeps its name, later ones are
    renamed <name>-<id> and told by an audit event; nothing else about them changes."""
    engine = make_engine(scratch_url)
    try:
        schema.upgrade(engine, "0004")
        now = datetime.now(UTC).replace(tzinfo=None)
        with engine.begin() as conn:
            for name in ("alice", "ALICE", "bob", "Alice"):
                conn.execute(
                    text("INSERT INTO users (username, password_hash, created_at) VALUES (:n, 'h', :t)"),
                    {"n": name, "t": now},
                )
            alice_id = conn.execute(text("SELECT id FROM users WHERE username = 'alice'")).scalar()
            conn.execute(
                text(
                    "INSERT INTO sites (owner_id, name, path, hostname, settings_summary, created_at) "
                    "VALUES (:o, 's', '/s', 'h', '{}', :t)"
                ),
                {"o": alice_id, "t": now},
            )
        schema.upgrade(engine, "0005")
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT id, username, name_key, role FROM users ORDER BY id")).all()
            renamed = conn.execute(
                text(
                    "SELECT user_id, detail FROM audit_events"
                    " WHERE action = 'account.renamed' ORDER BY user_id"
                )
            ).all()
            sites = conn.execute(text("SELECT owner_id FROM sites")).scalars().all()
        ids = [r.id for r in rows]
        assert [r.username for r in rows] == ["alice", f"ALICE-{ids[1]}", "bob", f"Alice-{ids[3]}"]
        assert [r.name_key for r in rows] == [r.username.casefold() for r in rows]
        assert {r.role for r in rows} == {"user"}
        assert [r.user_id for r in renamed] == [ids[1], ids[3]]
        assert sites == [alice_id], "the accounts' rows survive the migration"
        schema.downgrade(engine, "0004")
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM sites")).scalar() == 1
    finally:
        engine.dispose()
