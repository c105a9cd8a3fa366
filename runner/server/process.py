"""ServerProcess: one tolu server as a subprocess, started and stopped by PID.

Used by ``tolu server up``, the test harness, benchmarks and CI::

    with ServerProcess(tmp_path) as server:      # SQLite in tmp_path, a free port
        requests.get(server.url + "/health")

The server runs ``python -P -m runner.server ... --migrate`` in its own process group,
logs to ``<data_dir>/server.log`` and is ready when ``GET /health`` answers.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType

from runner.interpreter import module_command

LOG_FILE = "server.log"


class ServerStartError(RuntimeError):
    """The server process exited or did not answer /health in time."""

    def __init__(self, message: str, *, command: list[str], log_path: Path, log_tail: str) -> None:
        super().__init__(f"{message}\ncommand: {' '.join(command)}\nlog: {log_path}\n{log_tail}")
        self.command = command
        self.log_path = log_path
        self.log_tail = log_tail


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


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
        return cmd

    def start(self, timeout: float = 30.0) -> ServerProcess:
        if self._proc is not None:
            raise RuntimeError(f"server already started (pid {self._pid})")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        if self.port == 0:
            self.port = free_port(self.host if self.host not in ("0.0.0.0", "") else "127.0.0.1")
        env = {**os.environ, **self.env}
        env.setdefault("TOLU_DATA_DIR", str(self.data_dir))
        env.setdefault("PYTHONUNBUFFERED", "1")
        command = self.command()
        with open(self.log_path, "ab") as log:
            self._proc = subprocess.Popen(
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                start_new_session=True,
            )
        self._pid = self._proc.pid
        deadline = time.monotonic() + timeout
        while True:
            code = self._proc.poll()
            if code is not None:
                self._proc = None
                raise ServerStartError(
                    f"tolu server exited with code {code} before answering /health",
                    command=command,
                    log_path=self.log_path,
                    log_tail=_tail(self.log_path),
                )
            if self._healthy():
                return self
            if time.monotonic() > deadline:
                self.stop()
                raise ServerStartError(
                    f"tolu server did not answer {self.url}/health within {timeout:.0f}s",
                    command=command,
                    log_path=self.log_path,
                    log_tail=_tail(self.log_path),
                )
            time.sleep(0.1)

    def _healthy(self) -> bool:
        try:
            with urllib.request.urlopen(self.url + "/health", timeout=2) as resp:
                return bool(resp.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def is_running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM the server (by PID), SIGKILL it after ``timeout``; return its exit code."""
        proc = self._proc
        if proc is None:
            return None
        self._proc = None
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGKILL)
                proc.wait(5)
        return proc.returncode

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
