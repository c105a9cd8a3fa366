"""ServerProcess: one tolu server as a subprocess, started and stopped by PID.

Used by ``tolu server up``, the test harness, benchmarks and CI::

    with ServerProcess(tmp_path) as server:      # SQLite in tmp_path, a free port
        requests.get(server.url + "/health")

The server runs ``python -P -m runner.server ... --migrate`` in its own process group,
logs to ``<data_dir>/server.log`` and is ready when ``GET /health`` answers; it is
started and stopped by ``runner.daemon``.
"""

from __future__ import annotations

import os
import random
import socket
import subprocess
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType

import requests

from runner import daemon
from runner.interpreter import module_command

LOG_FILE = "server.log"


class ServerStartError(daemon.StartError):
    """The server process exited or did not answer /health in time."""


#: where :func:`free_port` looks when the kernel's ephemeral range leaves no room below it
_LOWEST_PORT = 10000
_EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")


def _ephemeral_low() -> int:
    """The first port of the kernel's ephemeral range."""
    try:
        return int(_EPHEMERAL_RANGE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768  # Linux's default


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on ``host`` that nothing holds now, for a listener started a moment later.

    The port comes from below the kernel's ephemeral range. A port the kernel hands out for
    ``bind(0)`` comes from that range, and so does the source port of every outgoing
    connection: between this call and the listener's ``bind``, any client on the machine could
    take it (a docker-proxy failed so, "address already in use", in a CI run full of HTTP
    clients). Below the range only another listener told the same number can, and the number
    is drawn at random, so two callers rarely are.
    """
    low = _ephemeral_low()
    if low - _LOWEST_PORT >= 1000:
        rng = random.SystemRandom()
        for _ in range(100):
            port = rng.randrange(_LOWEST_PORT, low)
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                try:
                    sock.bind((host, port))
                except OSError:
                    continue
                return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class ServerProcess:
    def __init__(
        self,
        data_dir: str | os.PathLike[str],
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        database_url: str | None = None,
        log_path: str | os.PathLike[str] | None = None,
        env: Mapping[str, str] | None = None,
        migrate: bool = True,
        workers: int = 1,
    ) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.host = host
        self.port = port
        self.database_url = database_url
        self.log_path = Path(log_path) if log_path else self.data_dir / LOG_FILE
        self.env = dict(env or {})
        #: pass --migrate (upgrade an older schema); ``tolu server up`` turns it off
        #: so an old database is refused with a hint instead of changed silently.
        self.migrate = migrate
        #: server processes sharing the port (PostgreSQL only; runner/server/workers.py)
        self.workers = workers
        self._proc: subprocess.Popen[bytes] | None = None
        self._pid: int | None = None

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host
        return f"http://{host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._pid

    def command(self) -> list[str]:
        cmd = [
            *module_command("runner.server"),
            "--host",
            self.host,
            "--port",
            str(self.port),
            "--data-dir",
            str(self.data_dir),
        ]
        if self.migrate:
            cmd.append("--migrate")
        if self.database_url:
            cmd += ["--database-url", self.database_url]
        if self.workers != 1:
            cmd += ["--workers", str(self.workers)]
        return cmd

    def start(self, timeout: float = 30.0) -> ServerProcess:
        if self._proc is not None:
            raise RuntimeError(f"server already started (pid {self._pid})")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self.port == 0:
            self.port = free_port(self.host if self.host not in ("0.0.0.0", "") else "127.0.0.1")
        env = {**os.environ, **self.env}
        env.setdefault("TOLU_DATA_DIR", str(self.data_dir))
        env.setdefault("PYTHONUNBUFFERED", "1")
        command = self.command()
        try:
            self._proc = daemon.start(
                command,
                log_path=self.log_path,
                ready=lambda _proc: self.health() is not None,
                timeout=timeout,
                env=env,
                name="tolu server",
            )
        except daemon.StartError as exc:
            what = (
                f"exited with code {exc.exit_code} before answering /health"
                if exc.exit_code is not None
                else f"did not answer {self.url}/health within {timeout:.0f}s"
            )
            raise ServerStartError(
                f"tolu server {what}", command=command, log_path=self.log_path, exit_code=exc.exit_code
            ) from None
        self._pid = self._proc.pid
        return self

    def health(self) -> dict[str, object] | None:
        """The answer of ``GET /health``, or None while the server does not answer."""
        return health(self.url, timeout=2)

    def is_running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM the server (by PID), SIGKILL it after ``timeout``; return its exit code."""
        proc, self._proc = self._proc, None
        return None if proc is None else daemon.stop(proc, timeout=timeout).exit_code

    def detach(self) -> int:
        """Forget the child without stopping it (``tolu server up --detach``); return its PID."""
        if self._proc is None or self._pid is None:
            raise RuntimeError("server not started")
        self._proc = None
        return self._pid

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"ServerProcess(url={self.url!r}, pid={self._pid}, data_dir={str(self.data_dir)!r})"


def health(url: str, *, timeout: float = 3.0) -> dict[str, object] | None:
    """The answer of ``GET url/health``, or None if nothing answers it there."""
    try:
        resp = requests.get(url.rstrip("/") + "/health", timeout=timeout)
        body = resp.json() if resp.status_code == 200 else None
    except (requests.RequestException, ValueError):
        return None
    return body if isinstance(body, dict) else None
