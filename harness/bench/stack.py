"""The real pieces a benchmark runs: database, server, user, site, app, launcher.

Everything is started here and stopped by PID when the ``with`` block ends; the
server is H1's ServerProcess (or a container, or an existing URL), the client is
H2's, the launcher H5's LauncherProcess. Nothing is mocked.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shlex
import socket
import sqlite3
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
import yaml

from harness.bench.tasks import Task
from harness.databases import create_database, drop_database
from harness.probes import libpq_url, postgres_admin_url


class StackError(RuntimeError):
    """A piece of the benchmark stack that did not start; says which and why."""


# ---------------------------------------------------------------- database


@dataclass
class Database:
    kind: str  # sqlite | postgresql
    url: str | None  # None: the server's own SQLite file in its data dir
    version: str | None
    _admin_url: str | None = None
    _dropped: bool = False

    def backend_cpu(self) -> dict[int, float] | None:
        """CPU seconds so far of each PostgreSQL backend connected to this database (this
        query's own left out); None for SQLite (the server's own process does its work) or
        for a PostgreSQL whose processes this machine cannot see (another host, a container)."""
        if self.kind != "postgresql" or self.url is None:
            return None
        import psycopg

        from harness.bench.processes import cpu_seconds, read_stat

        query = (
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        try:
            with psycopg.connect(libpq_url(self.url), autocommit=True, connect_timeout=10) as conn:
                pids = [int(row[0]) for row in conn.execute(query).fetchall()]
        except psycopg.Error:
            return None
        out: dict[int, float] = {}
        for pid in pids:
            stat = read_stat(pid)
            cpu = cpu_seconds(pid)
            if stat is None or stat.comm != "postgres" or cpu is None:
                # not a backend of this machine (a backend that just ended reads the same:
                # the figure is then missing rather than short)
                return None
            out[pid] = cpu
        return out

    def drop(self) -> None:
        if self.kind != "postgresql" or self.url is None or self._dropped:
            return
        drop_database(self.url, admin_url=self._admin_url)
        self._dropped = True


def open_database(kind: str, *, admin_url: str | None = None) -> Database:
    """SQLite (the server's default file) or a fresh PostgreSQL database."""
    if kind == "sqlite":
        return Database("sqlite", None, sqlite3.sqlite_version)
    if kind != "postgresql":
        raise StackError(f"--database {kind!r}: expected sqlite or postgresql")
    admin_url = admin_url or postgres_admin_url()
    import psycopg

    try:
        with psycopg.connect(libpq_url(admin_url), autocommit=True, connect_timeout=10) as conn:
            version = str(conn.execute("SHOW server_version").fetchone()[0])  # type: ignore[index]
        url = create_database("tolu_bench", admin_url=admin_url)
    except psycopg.Error as exc:
        raise StackError(
            f"PostgreSQL at {_redact(admin_url)} is not usable: {exc}".strip()
            + " (set TOLU_TEST_POSTGRES_URL, or run ci/provision/postgres.sh)"
        ) from None
    return Database("postgresql", url, version, _admin_url=admin_url)


def _redact(url: str) -> str:
    return re.sub(r"://([^:/@]+):[^@]*@", r"://\1:***@", url)


# ---------------------------------------------------------------- server


@dataclass
class Server:
    url: str
    pid: int | None
    log_path: Path | None
    kind: str
    _stop: Any = None
    #: processes it runs as (``--workers``): a supervisor and this many workers when > 1
    workers: int = 1

    def stop(self) -> None:
        if self._stop is not None:
            self._stop()
            self._stop = None


def start_server(kind: str, data_dir: Path, database: Database, *, workers: int = 1) -> Server:
    """``process`` (ServerProcess), ``container`` (harness/container/server.py) or a URL.

    ``workers`` server processes share the port (``--workers``, PostgreSQL only); only
    a server started here as a process can be given more than one.
    """
    check_server_workers([workers], server=kind, databases=[database.kind])
    if kind.startswith(("http://", "https://")):
        return Server(kind.rstrip("/"), None, None, "url")
    data_dir.mkdir(parents=True, exist_ok=True)
    log_path = data_dir / "server.log"
    if kind == "process":
        proc = _counted_server_process(
            data_dir, database_url=database.url, log_path=log_path, workers=workers
        )
        try:
            proc.start(timeout=60)
        except Exception as exc:
            proc.stop()
            raise StackError(f"the tolu server did not start: {exc} (log: {log_path})") from exc
        return Server(proc.url, proc.pid, log_path, "process", proc.stop, workers=workers)
    if kind == "container":
        from harness.container.server import ContainerServer

        box = ContainerServer(data_dir, database_url=database.url, log_path=log_path)
        try:
            box.start(timeout=120)
        except Exception as exc:
            box.stop()
            raise StackError(f"the tolu server container did not start: {exc} (log: {log_path})") from exc
        return Server(box.url, box.pid, log_path, "container", box.stop)
    raise StackError(f"--server {kind!r}: expected process, container or an http(s):// URL")


def check_server_workers(counts: Sequence[int], *, server: str, databases: Sequence[str]) -> None:
    """Refuse, before anything starts, numbers of server processes the stack cannot run:
    more than one needs a server started here and PostgreSQL (as ``tolu server up`` says)."""
    if any(n < 1 for n in counts):
        raise StackError(f"--server-workers {','.join(map(str, counts))}: expected numbers of 1 or more")
    several = [n for n in counts if n > 1]
    if not several:
        return
    if "sqlite" in databases:
        from runner.server.workers import ONE_SQLITE_WRITER

        raise StackError(f"--server-workers {several[0]} needs --database postgresql: {ONE_SQLITE_WRITER}")
    if server != "process":
        raise StackError(f"--server-workers {several[0]} needs --server process (the server is started here)")


def _counted_server_process(data_dir: Path, **kwargs: Any) -> Any:
    """H1's ServerProcess, starting the server through harness.bench.counted_server."""
    from runner.server.process import ServerProcess

    class CountedServerProcess(ServerProcess):
        def command(self) -> list[str]:
            cmd = list(super().command())
            cmd[cmd.index("runner.server")] = "harness.bench.counted_server"
            return cmd

    return CountedServerProcess(data_dir, **kwargs)


# ---------------------------------------------------------------- request counting


class RequestCounter:
    """Requests the server has answered, counted on the server side.

    Asks the counter of harness.bench.counted_server (``--server process``), else a
    Prometheus-style ``/metrics`` (``tolu_http_requests_total``/``http_requests_total``)
    if the server has one; ``None`` when neither answers (e.g. a remote URL).
    """

    def __init__(self, server: Server) -> None:
        self.server = server
        self.source: str | None = None
        self.by_route: dict[str, int] = {}

    def count(self) -> int | None:
        from harness.bench.counted_server import COUNTER_PATH

        try:
            resp = requests.get(self.server.url + COUNTER_PATH, timeout=10)
            if resp.status_code == 200:
                body = resp.json()
                self.source = "request counter"
                self.by_route = {str(k): int(v) for k, v in body.get("by_route", {}).items()}
                return int(body["total"])
            resp = requests.get(self.server.url + "/metrics", timeout=10)
        except (requests.RequestException, ValueError, KeyError):
            return None
        if resp.status_code != 200:
            return None
        total = 0.0
        found = False
        for line in resp.text.splitlines():
            if line.startswith(("tolu_http_requests_total", "http_requests_total")):
                with contextlib.suppress(ValueError, IndexError):
                    total += float(line.rsplit(" ", 1)[1])
                    found = True
        if not found:
            return None
        self.source = "/metrics"
        return int(total)


# ---------------------------------------------------------------- the stack


@dataclass
class Stack:
    """A running server with a registered user, a site directory and one app per task."""

    server: Server
    database: Database
    client: Any
    username: str
    password: str
    site_id: int
    site_dir: Path
    config_path: Path
    apps: dict[str, int] = field(default_factory=dict)

    def app_for(self, task: Task, workers: int) -> int:
        """The app running ``task`` (created on first use)."""
        key = task.spec
        if key not in self.apps:
            from runner.models import AppCreate

            spec = AppCreate(
                site_id=self.site_id,
                name=task.app_name,
                description=f"tolu bench task {task.spec}",
                command_template=shlex.join(task.argv),
            )
            app = self.client.apps.create(**spec.model_dump())
            self.apps[key] = int(app.id)
        return self.apps[key]


def write_site(
    site_dir: Path,
    *,
    site_id: int,
    server_url: str,
    slots: int,
    services: Sequence[str] = (),
    **sections: Mapping[str, Any],
) -> Path:
    """A site directory as runner/site/settings.py describes it, for ``slots`` worker slots.

    ``services`` are the agent's; ``sections`` add keys to settings sections
    (``processing={"poll_interval_sec": 1}``).
    """
    from runner.site.settings import SETTINGS_FILE, SiteSettings

    for sub in ("apps", "data", "log", "batch"):
        (site_dir / sub).mkdir(parents=True, exist_ok=True)
    raw: dict[str, Any] = {
        "site_id": site_id,
        "name": site_dir.name,
        "server_url": server_url,
        "launcher": {"mpi_launcher": "mpich", "node": {"cpus": slots}, "node_discovery": "local"},
        "services": list(services),
    }
    for name, values in sections.items():
        raw[name] = {**raw.get(name, {}), **values}
    settings = SiteSettings.model_validate(raw)
    path = site_dir / SETTINGS_FILE
    path.write_text(yaml.safe_dump(settings.model_dump(mode="json"), sort_keys=False))
    return path


def fake_nodes(site_dir: Path, count: int, *, slots: int) -> dict[str, Any]:
    """Launcher settings for ``count`` made-up nodes of ``slots`` CPUs each, whose ranks Hydra
    starts on this machine (``mpiexec -launcher fork``): a multi-node allocation on one host."""
    hostfile = site_dir / "hostfile"
    hostfile.write_text("".join(f"node{i:03d}:{slots}\n" for i in range(count)))
    return {
        "mpi_launcher": "mpich",
        "mpi_args": ["-launcher", "fork"],
        "node": {"cpus": slots},
        "node_discovery": "hostfile",
        "hostfile": str(hostfile),
    }


@contextlib.contextmanager
def open_stack(
    work_dir: Path,
    *,
    server: str = "process",
    database: str = "sqlite",
    slots: int = 2,
    nodes: int = 1,
    server_workers: int = 1,
) -> Iterator[Stack]:
    """Start everything under ``work_dir``; stop it all (by PID) on exit.

    The site has one node of ``slots`` CPUs, or ``nodes`` made-up ones (:func:`fake_nodes`);
    the server runs as ``server_workers`` processes (:func:`start_server`).
    """
    from runner.client import Client

    db = open_database(database)
    srv: Server | None = None
    old_config = os.environ.get("TOLU_CONFIG")
    try:
        srv = start_server(server, work_dir / "server", db, workers=server_workers)
        username = f"bench_{secrets.token_hex(4)}"
        password = secrets.token_urlsafe(16)
        Client.register(srv.url, username, password)
        client = Client.login(srv.url, username, password)
        config_path = work_dir / "credentials.yaml"
        client.save_config(config_path)
        os.environ["TOLU_CONFIG"] = str(config_path)
        site_dir = work_dir / "site"
        site_dir.mkdir(parents=True, exist_ok=True)
        site = client.sites.create(
            name=f"bench-{secrets.token_hex(3)}", path=str(site_dir), hostname=socket.gethostname()
        )
        launcher = fake_nodes(site_dir, nodes, slots=slots) if nodes > 1 else {}
        write_site(site_dir, site_id=int(site.id), server_url=srv.url, slots=slots, launcher=launcher)
        yield Stack(srv, db, client, username, password, int(site.id), site_dir, config_path)
    finally:
        if old_config is None:
            os.environ.pop("TOLU_CONFIG", None)
        else:
            os.environ["TOLU_CONFIG"] = old_config
        if srv is not None:
            srv.stop()
        with contextlib.suppress(Exception):
            db.drop()


# ---------------------------------------------------------------- launcher


@dataclass
class Launcher:
    pid: int
    log_dir: Path
    _proc: Any

    def alive(self) -> bool:
        return bool(self._proc.poll() is None)

    def tail(self) -> str:
        return str(self._proc.console_tail(2000))

    def stop(self) -> None:
        self._proc.stop()


def start_launcher(stack: Stack, mode: str, *, tags: dict[str, str] | None = None) -> Launcher:
    """H5's LauncherProcess (``tolu launcher --site ... --mode ...``), stopped by PID later."""
    from runner.launcher.process import LauncherProcess

    proc = LauncherProcess(stack.site_dir, mode, tags=tags, env={"TOLU_CONFIG": str(stack.config_path)})
    proc.start()
    return Launcher(int(proc.pid), stack.site_dir / "log", proc)
