"""Server-side fixtures: database, PostgreSQL scratch database, server, logged-in client.

Session-scoped where a thing is expensive (server, database), function-scoped where
a test must not see another's rows (the client is a fresh user per test). Under
pytest-xdist every worker has its own server, data directory and database name.
Every server is stopped by PID, also when the run is interrupted.
"""

from __future__ import annotations

import contextlib
import secrets
import shutil
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from harness.databases import scratch_database
from harness.evidence import Evidence
from harness.run import reports_key, run_state

if TYPE_CHECKING:
    from runner.client import Client


@dataclass(frozen=True)
class ServerHandle:
    """A running server as tests see it."""

    url: str
    database: str
    #: process | container | url
    mode: str
    log_path: Path | None = None
    pid: int | None = None
    data_dir: Path | None = None
    #: writes the latest log to ``log_path`` (containers); None when it is written live.
    refresh_log: Callable[[], None] | None = None

    def log_text(self) -> str:
        if self.refresh_log is not None:
            self.refresh_log()
        if self.log_path is None or not self.log_path.exists():
            return ""
        return self.log_path.read_text(errors="replace")


def _worker(config: pytest.Config) -> str:
    return run_state(config).worker_id


@pytest.fixture(scope="session")
def tolu_database(request: pytest.FixtureRequest) -> str:
    """The database kind of servers the harness starts: ``sqlite`` or ``postgresql``.

    Parametrized over both in suites/server and suites/api (the postgresql case
    carries ``requires("postgres")``); elsewhere ``--database`` or sqlite.
    """
    param: str | None = getattr(request, "param", None)
    if param:
        return param
    option: str | None = request.config.getoption("database")
    return option.split(",")[0].strip() if option else "sqlite"


@pytest.fixture(scope="session")
def postgres_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh, uniquely named PostgreSQL database (SQLAlchemy URL), dropped at the end."""
    run_state(request.config).need("postgres")
    with scratch_database(f"tolu_test_{_worker(request.config)}") as url:
        yield url


@pytest.fixture(scope="session")
def tolu_server(
    request: pytest.FixtureRequest, tolu_database: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerHandle]:
    """A running tolu server: local process (default), container (``--server container``)
    or an existing one (``--server URL``)."""
    config = request.config
    state = run_state(config)
    how: str = config.getoption("server_url") or config.getoption("server")
    if how not in ("process", "container"):
        yield _existing_server(how)
        return
    database_url = None if tolu_database == "sqlite" else request.getfixturevalue("postgres_url")
    data_dir = tmp_path_factory.mktemp(f"server-{tolu_database}")
    log_path = data_dir / "server.log"
    env: dict[str, str] = {}  # the signing keys are the server's own, in its data directory
    server: Any
    refresh: Callable[[], None] | None = None
    if how == "container":
        state.need("docker")
        from harness.container.server import ContainerServer

        server = ContainerServer(data_dir, database_url=database_url, log_path=log_path, env=env)
        refresh = server.collect_logs
    else:
        from runner.server.process import ServerProcess

        server = ServerProcess(data_dir, database_url=database_url, log_path=log_path, env=env)
    label = f"tolu server ({how}, {tolu_database})"
    try:
        server.start(timeout=90)
    except BaseException as exc:
        _stop_quietly(server)
        tail = "\n".join(_read(log_path).splitlines()[-30:])
        pytest.fail(f"{label} did not start: {exc}\n--- {log_path} (tail) ---\n{tail}", pytrace=False)
    daemon = state.track(label, server.pid or -1, server.stop)
    state.databases.add(tolu_database)
    try:
        yield ServerHandle(
            url=server.url,
            database=tolu_database,
            mode=how,
            log_path=log_path,
            pid=server.pid,
            data_dir=data_dir,
            refresh_log=refresh,
        )
    finally:
        state.untrack(daemon)
        server.stop()
        _keep_log(state.run_dir, f"server-{state.worker_id}-{tolu_database}-{how}.log", log_path, refresh)


def _keep_log(run_dir: Path, name: str, log_path: Path, refresh: Callable[[], None] | None) -> None:
    """The whole log of a server the harness ran, into ``<run>/servers/`` (tests get slices)."""
    try:
        if refresh is not None:
            refresh()
        (run_dir / "servers").mkdir(parents=True, exist_ok=True)
        shutil.copyfile(log_path, run_dir / "servers" / name)
    except Exception:  # no log to keep is not a test failure
        pass


def _existing_server(url: str) -> ServerHandle:
    from runner.client import Client

    with Client(url.rstrip("/"), retries=2) as client:
        try:
            health = client.health()
        except Exception as exc:
            pytest.fail(f"--server {url}: no tolu server answers: {exc}", pytrace=False)
    return ServerHandle(url=url.rstrip("/"), database=health.database, mode="url")


def _stop_quietly(server: Any) -> None:
    with contextlib.suppress(Exception):
        server.stop()


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


@pytest.fixture(autouse=True)
def tolu_evidence(request: pytest.FixtureRequest) -> Iterator[Evidence]:
    """Per test: collects the evidence of what the test ran (server log slice, jobs'
    state histories, site logs, failed jobs' output) into ``artifacts/<run>/tests/``."""
    state = run_state(request.config)
    evidence = Evidence(request.node.nodeid, state.run_dir)
    for mark in request.node.iter_markers("expect_errors"):
        evidence.expect_errors(*mark.args)
    if "tolu_server" in request.fixturenames:
        # getattr: a conftest may override tolu_server with its own kind of server object
        server: Any = request.getfixturevalue("tolu_server")
        evidence.add_server(
            url=str(getattr(server, "url", "")),
            database=str(getattr(server, "database", "unknown")),
            mode=str(getattr(server, "mode", "custom")),
            log_path=getattr(server, "log_path", None),
            refresh=getattr(server, "refresh_log", None),
        )
    yield evidence
    if evidence.used:
        reports = request.node.stash.get(reports_key, {})
        call = reports.get("call") or reports.get("setup")
        outcome = call.outcome if call is not None else "unknown"
        evidence.collect(outcome)
        for client in evidence.clients:
            client.close()


@pytest.fixture
def expected_errors(tolu_evidence: Evidence) -> Callable[..., None]:
    """``expected_errors(r"regex", ...)``: ERROR log lines this test provokes on purpose."""
    return tolu_evidence.expect_errors


@pytest.fixture
def tolu_client(
    tolu_server: ServerHandle, tolu_evidence: Evidence, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Client:
    """A fresh registered, logged-in user; ``$TOLU_CONFIG`` points at its credentials file,
    so ``tolu`` subprocesses of the test act as this user."""
    client = _new_user(tolu_server.url)
    path = client.save_config(tmp_path / "tolu-credentials.yaml")
    monkeypatch.setenv("TOLU_CONFIG", str(path))
    tolu_evidence.add_client(client)
    return client


@pytest.fixture
def make_user(tolu_server: ServerHandle) -> Iterator[Callable[[], Client]]:
    """``make_user() -> Client``: another fresh, logged-in user of the same server
    (closed at the end of the test; ``$TOLU_CONFIG`` stays ``tolu_client``'s)."""
    made: list[Client] = []

    def make() -> Client:
        client = _new_user(tolu_server.url)
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


def _new_user(url: str) -> Client:
    """Register a fresh user on the server at ``url`` and log it in."""
    from runner.client import Client

    name = f"user-{uuid.uuid4().hex[:12]}"
    password = secrets.token_urlsafe(18)
    Client.register(url, name, password)
    return Client.login(url, name, password)
