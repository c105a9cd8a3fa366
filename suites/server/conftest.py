"""Fixtures of the server suite.

``tolu_server`` (parametrized over SQLite and PostgreSQL), ``tolu_client``,
``make_user`` and ``postgres_url`` come from the harness. Here: raw HTTP for what the
client would refuse to send, a site with an app, scratch databases for the
migration tests (never the one the running server uses), and a server of its own on
a scratch PostgreSQL database for tests that reach into the database beside it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from server_helpers import Raw, SiteApp, make_site_app

from runner.client import Client
from runner.server.process import ServerProcess


@pytest.fixture
def raw(tolu_client: Client) -> Iterator[Raw]:
    assert tolu_client.token is not None
    http = Raw(tolu_client.url, tolu_client.token)
    yield http
    http.session.close()


@pytest.fixture
def site_app(tolu_client: Client) -> SiteApp:
    return make_site_app(tolu_client)


@pytest.fixture
def scratch_url(tolu_database: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[str]:
    """An empty database of the parametrized kind, for migration tests."""
    if tolu_database == "sqlite":
        yield f"sqlite:///{tmp_path / 'scratch.db'}"
        return
    from harness.databases import scratch_database

    request.getfixturevalue("postgres_url")  # the harness's PostgreSQL checks (skip / --require)
    with scratch_database("tolu_scratch") as url:
        yield url


@pytest.fixture
def pg_server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[ServerProcess, str]]:
    """A server process on a scratch PostgreSQL database of its own, and that database's URL."""
    from harness.databases import scratch_database

    request.getfixturevalue("postgres_url")  # the harness's PostgreSQL checks (skip / --require)
    with scratch_database("tolu_server") as url:
        server = ServerProcess(tmp_path / "server", database_url=url)
        server.start(timeout=90)
        try:
            yield server, url
        finally:
            server.stop()
