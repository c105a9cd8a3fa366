"""Retries against a real server that is down, then comes up; credentials file handling."""

from __future__ import annotations

import logging
import os
import stat
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from harness.waiting import wait_until
from runner.client import Client, ConfigError, TransportError
from runner.client.config import config_path
from runner.server.process import ServerProcess, free_port


def _refused(caplog: pytest.LogCaptureFixture) -> Callable[[], bool]:
    """True once the client logs a retry after now: it was turned away."""

    def retries() -> int:
        return sum("retr" in r.getMessage().lower() for r in caplog.records if r.levelno >= logging.WARNING)

    before = retries()
    return lambda: retries() > before


def _start_when(
    server: ServerProcess, refused: Callable[[], bool], errors: list[BaseException]
) -> threading.Thread:
    """Start ``server`` in a thread once the client has been refused: it comes up late."""

    def run() -> None:
        try:
            wait_until(refused, timeout=60, interval=0.05, what="the client to retry")
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


def test_client_waits_for_a_server_that_comes_up_late(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = ServerProcess(tmp_path / "server", port=port)
    errors: list[BaseException] = []
    thread = _start_when(server, _refused(caplog), errors)
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
        thread = _start_when(server, _refused(caplog), errors)
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


#: one scripted answer: status, body, delay before answering, and optionally headers.
#: Status 0 closes the connection without answering (a server going down under it).
Answer = tuple[int, str, float] | tuple[int, str, float, dict[str, str]]


class _Flaky:
    """A plain HTTP endpoint that answers from a script: what a proxy or a restarting
    server in front of tolu can do (503s, 4xx, slow answers, dropped connections).
    Counts the requests."""

    def __init__(self, script: list[Answer]) -> None:
        import http.server

        self.script = list(script)
        self.requests: list[str] = []
        #: requests answered (or whose client had gone when the answer was ready)
        self.answered = 0
        flaky = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                flaky.requests.append(self.command)
                status, body, delay, *more = flaky.script.pop(0) if flaky.script else (200, "{}", 0.0)
                time.sleep(delay)
                if status == 0:
                    self.close_connection = True
                    return
                data = body.encode()
                try:
                    self.send_response(status)
                    for name, value in (more[0] if more else {}).items():
                        self.send_header(name, value)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:
                    pass  # the client gave up waiting
                flaky.answered += 1

            do_GET = do_POST = do_PATCH = _answer

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> _Flaky:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


HEALTH = '{"status": "ok", "version": "x", "schema_revision": null, "database": "sqlite"}'


def test_5xx_is_retried_4xx_is_not() -> None:
    from runner.client import NotFound, ServerError

    with _Flaky([(503, "busy", 0), (502, "<html>bad gateway</html>", 0), (200, HEALTH, 0)]) as flaky:
        assert Client(flaky.url, retries=3, backoff=0.01).health().version == "x"
        assert flaky.requests == ["GET"] * 3
    with _Flaky([(500, '{"detail": "boom"}', 0)] * 3) as flaky:
        with pytest.raises(ServerError, match="boom") as err:
            Client(flaky.url, retries=2, backoff=0.01).health()
        assert err.value.status == 500 and len(flaky.requests) == 3
    with _Flaky([(404, '{"detail": "job 7 not found"}', 0)]) as flaky:
        with pytest.raises(NotFound, match="job 7 not found"):
            Client(flaky.url, "t", retries=5, backoff=0.01).jobs.get(7)
        assert flaky.requests == ["GET"]


def test_read_timeout_is_retried_for_get_only() -> None:
    with _Flaky([(200, HEALTH, 1.0), (200, HEALTH, 0)]) as flaky:
        assert Client(flaky.url, timeout=0.3, retries=2, backoff=0.01).health().status == "ok"
        assert flaky.requests == ["GET", "GET"]
    # A POST that timed out may have been applied: it is not sent again...
    with _Flaky([(201, "{}", 1.0)]) as flaky:
        with pytest.raises(TransportError, match="timed out"):
            Client(flaky.url, "t", timeout=0.3, retries=3, backoff=0.01).sites.create(
                name="s", path="/", hostname="h"
            )
        # once the slow answer is out, a POST sent again would have arrived long before
        wait_until(lambda: flaky.answered, timeout=30, what="the answer to the POST")
        assert flaky.requests == ["POST"]
    # ...except a job create: every job carries an idempotency key, so sending it twice is safe
    with _Flaky([(201, "[]", 1.0), (201, "[]", 0)]) as flaky:
        assert (
            Client(flaky.url, "t", timeout=0.3, retries=3, backoff=0.01).jobs.bulk_create([{"app_id": 1}])
            == []
        )
        assert flaky.requests == ["POST", "POST"]


def test_5xx_and_dropped_connections_are_retried_for_every_method() -> None:
    # A bulk request is one transaction: a 500 rolled it back, a proxy's 503 never
    # reached tolu, and a connection dropped by a restarting server carried no answer.
    answers: list[Answer] = [(503, "busy", 0), (0, "", 0), (201, "[]", 0)]
    with _Flaky(answers) as flaky:
        assert Client(flaky.url, "t", retries=3, backoff=0.01).jobs.bulk_create([{"app_id": 1}]) == []
        assert flaky.requests == ["POST"] * 3
    with _Flaky([(0, "", 0)] * 3) as flaky:
        with pytest.raises(TransportError) as err:
            Client(flaky.url, "t", retries=2, backoff=0.01).jobs.bulk_update([{"id": 1}])
        assert err.value.attempts == 3 and flaky.requests == ["PATCH"] * 3


def test_retry_after_is_honoured_other_4xx_are_not_retried() -> None:
    from runner.client import APIError

    with _Flaky([(429, "slow down", 0, {"Retry-After": "0"}), (200, HEALTH, 0)]) as flaky:
        assert Client(flaky.url, retries=2, backoff=0.01).health().status == "ok"
        assert flaky.requests == ["GET", "GET"]
    with _Flaky([(429, '{"detail": "slow down"}', 0)]) as flaky:
        with pytest.raises(APIError, match="slow down") as err:
            Client(flaky.url, retries=2, backoff=0.01).health()
        assert err.value.status == 429 and flaky.requests == ["GET"]


def test_the_environments_proxy_is_used_and_no_proxy_is_honoured(monkeypatch: pytest.MonkeyPatch) -> None:
    # read once when the client is made (not at every request), with the same rules
    server = f"http://127.0.0.1:{free_port()}"  # nothing listens there: only the proxy answers
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    with _Flaky([(200, '{"status": "ok"}', 0.0)]) as proxy:
        for name in ("HTTP_PROXY", "http_proxy"):
            monkeypatch.setenv(name, proxy.url)
        assert Client(server, retries=0)._http.request("GET", "/health").json() == {"status": "ok"}
        assert proxy.requests == ["GET"]

        for name in ("NO_PROXY", "no_proxy"):
            monkeypatch.setenv(name, "127.0.0.1")
        with pytest.raises(TransportError, match="connection refused"):
            Client(server, retries=0)._http.request("GET", "/health")
        assert proxy.requests == ["GET"]
