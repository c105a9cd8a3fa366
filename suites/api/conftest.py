"""Fixtures of the api suite (``tolu_server`` and ``tolu_client`` come from the harness)."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Callable, Iterator

import pytest

from harness.fixtures_server import ServerHandle
from runner.client import Client


@pytest.fixture
def make_user(tolu_server: ServerHandle) -> Iterator[Callable[[], Client]]:
    """``make_user() -> Client``: another fresh, logged-in user of the same server."""
    made: list[Client] = []

    def make() -> Client:
        name = f"user-{uuid.uuid4().hex[:12]}"
        password = secrets.token_urlsafe(18)
        Client.register(tolu_server.url, name, password)
        client = Client.login(tolu_server.url, name, password)
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()
