"""Scratch PostgreSQL databases: created with a unique name, dropped when done.

Used by the ``postgres_url`` fixture, the server suite's migration tests and the
benchmarks, so each of them gets a database of its own on the shared cluster at
``$TOLU_TEST_POSTGRES_URL`` (see ``harness.probes.postgres_admin_url``).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from harness.probes import libpq_url, postgres_admin_url


def create_database(prefix: str, *, admin_url: str | None = None) -> str:
    """Create an empty database named ``<prefix>_<random>``; answer its SQLAlchemy URL.

    Raises ``psycopg.Error`` when the cluster cannot be reached or refuses.
    """
    import psycopg
    from sqlalchemy.engine import make_url

    admin = admin_url or postgres_admin_url()
    name = f"{prefix}_{uuid.uuid4().hex[:12]}".lower().replace("-", "_")
    with psycopg.connect(libpq_url(admin), autocommit=True, connect_timeout=10) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return make_url(admin).set(database=name).render_as_string(hide_password=False)


def drop_database(url: str, *, admin_url: str | None = None) -> None:
    """Drop the database ``url`` names (connections to it are closed first)."""
    import psycopg
    from sqlalchemy.engine import make_url

    name = make_url(url).database
    admin = admin_url or postgres_admin_url()
    with psycopg.connect(libpq_url(admin), autocommit=True, connect_timeout=10) as conn:
        try:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        except psycopg.errors.InsufficientPrivilege:
            # FORCE may not end an autovacuum worker for a role without
            # pg_signal_backend; a plain DROP asks autovacuum to leave and waits for it
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')


@contextmanager
def scratch_database(prefix: str, *, admin_url: str | None = None) -> Iterator[str]:
    """``with scratch_database("tolu_test") as url:`` — a fresh database for the block."""
    url = create_database(prefix, admin_url=admin_url)
    try:
        yield url
    finally:
        drop_database(url, admin_url=admin_url)
