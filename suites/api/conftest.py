"""Fixtures of the api suite.

``tolu_server`` and ``tolu_client`` come from the harness plugin (harness.plugin). The
fallback below exists only while that plugin cannot be loaded (run with ``-p no:tolu``);
it starts one SQLite ServerProcess per session. Delete it once the harness is settled.
"""

from __future__ import annotations

import secrets
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from runner.client import Client


@pytest.fixture
def make_user(tolu_server: object) -> Iterator[object]:
    """``make_user() -> Client``: another fresh, logged-in user of the same server."""
    made: list[Client] = []
    url: str = tolu_server.url  # type: ignore[attr-defined]

    def make() -> Client:
        name = f"user-{uuid.uuid4().hex[:12]}"
        password = secrets.token_urlsafe(18)
        Client.register(url, name, password)
        client = Client.login(url, name, password)
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


if "harness.plugin" not in sys.modules:  # pragma: no cover - fallback while the harness is off

    @dataclass(frozen=True)
    class _Server:
        url: str
        database: str = "sqlite"

    @pytest.fixture(scope="session")
    def tolu_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[_Server]:
        from runner.server.process import ServerProcess

        data_dir = tmp_path_factory.mktemp("server")
        server = ServerProcess(data_dir, env={"TOLU_SECRET_KEY": secrets.token_hex(32)})
        server.start(timeout=60)
        try:
            yield _Server(server.url)
        finally:
            server.stop()

    @pytest.fixture
    def tolu_client(
        tolu_server: _Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> Iterator[Client]:
        name = f"user-{uuid.uuid4().hex[:12]}"
        password = secrets.token_urlsafe(18)
        Client.register(tolu_server.url, name, password)
        client = Client.login(tolu_server.url, name, password)
        monkeypatch.setenv("TOLU_CONFIG", str(client.save_config(tmp_path / "credentials.yaml")))
        yield client
        client.close()
