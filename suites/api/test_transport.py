"""Retries against a real server that is down, then comes up; credentials file handling."""

from __future__ import annotations

import os
import secrets
import stat
import threading
import time
from pathlib import Path

import pytest
import yaml

from runner.client import Client, ConfigError, TransportError
from runner.client.config import config_path
from runner.server.process import ServerProcess, free_port


def _start_later(server: ServerProcess, delay: float, errors: list[BaseException]) -> threading.Thread:
    def run() -> None:
        time.sleep(delay)
        try:
            server.start(timeout=60)
        except BaseException as exc:  # reported by the test
            errors.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_unreachable_server_is_a_transport_error_after_the_retries() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    client = Client(url, "token", retries=2, backoff=0.01)
    with pytest.raises(TransportError) as err:
        client.jobs.count()
    assert err.value.attempts == 3 and url in str(err.value) and "connection refused" in str(err.value)


def test_client_waits_for_a_server_that_comes_up_late(tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = ServerProcess(tmp_path / "server", port=port, env={"TOLU_SECRET_KEY": secrets.token_hex(32)})
    errors: list[BaseException] = []
    thread = _start_later(server, 1.0, errors)
    try:
        # Nothing listens yet: register (a POST) is retried on connection refused until it answers.
        user = Client.register(url, "late-alice", "password-123", retries=10)
        assert user.username == "late-alice"
        client = Client.login(url, "late-alice", "password-123", retries=10)
        site = client.sites.create(name="s", path=str(tmp_path), hostname="h")

        # The server goes away and comes back on the same port and data: pooled
        # connections are stale, requests in between are retried, nothing is lost.
        thread.join()
        server.stop()
        thread = _start_later(server, 1.0, errors)
        assert [s.id for s in client.sites.filter()] == [site.id]
        thread.join()
        assert not errors, errors
    finally:
        thread.join()
        server.stop()


def test_save_config_is_private_and_round_trips(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "sub" / "credentials.yaml"
    monkeypatch.setenv("TOLU_CONFIG", str(path))
    client = Client("http://127.0.0.1:9", "tok-123", username="alice")
    assert client.save_config() == path == config_path()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert yaml.safe_load(path.read_text()) == {
        "url": "http://127.0.0.1:9",
        "username": "alice",
        "token": "tok-123",
    }
    again = Client.from_config()
    assert (again.url, again.username, again.token) == ("http://127.0.0.1:9", "alice", "tok-123")

    # An existing file readable by others is replaced by a private one.
    path.chmod(0o644)
    Client("http://h:1", "tok-2", username="bob").save_config()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert Client.from_config(path).username == "bob"
    assert [p.name for p in path.parent.iterdir()] == ["credentials.yaml"]  # no temp file left


def test_config_errors_say_what_to_do(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOLU_CONFIG", str(tmp_path / "missing.yaml"))
    with pytest.raises(ConfigError, match="tolu login"):
        Client.from_config()
    bad = tmp_path / "bad.yaml"
    bad.write_text("url: http://x\n")
    with pytest.raises(ConfigError, match="missing username, token"):
        Client.from_config(bad)
    with pytest.raises(ConfigError, match="not logged in"):
        Client("http://x").save_config(tmp_path / "c.yaml")
    assert not os.path.exists(tmp_path / "c.yaml")
