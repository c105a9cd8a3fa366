"""Alembic environment for tolu's server schema.

Run through ``tolu server migrate`` (or runner.server.schema), which hands over
either a live connection (``config.attributes["connection"]``) or the URL.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from runner.server.db import make_engine
from runner.server.tables import metadata

config = context.config


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = make_engine(config.get_main_option("sqlalchemy.url") or "")
    try:
        with engine.connect() as conn:
            _run(conn)
            conn.commit()
    finally:
        engine.dispose()


if context.is_offline_mode():
    raise SystemExit("tolu migrations run online only: use `tolu server migrate`")
run_migrations_online()
