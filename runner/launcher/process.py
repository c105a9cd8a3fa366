"""``LauncherProcess``: start ``tolu launcher`` as a subprocess and stop it by PID.

Used by the harness, the benchmarks and batch scripts::

    with LauncherProcess(site_dir, "serial", max_idle_sec=5, env={"TOLU_CONFIG": cfg}) as lp:
        lp.wait(timeout=120)        # returns when the launcher went idle and stopped

``stop()`` sends SIGTERM (the launcher ends running jobs as RUN_TIMEOUT and closes
its session), then SIGKILL after ``grace``; ``kill()`` is SIGKILL at once (a crash:
the server recovers the jobs when the session expires).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import IO

from runner.interpreter import module_command


class LauncherProcess:
    def __init__(
        self,
        site_dir: str | os.PathLike[str],
        mode: str = "mpi",
        *,
        batch_job_id: int | None = None,
        wall_time_min: float | None = None,
        hostfile: str | os.PathLike[str] | None = None,
        max_idle_sec: float | None = None,
        tags: Mapping[str, str] | None = None,
        env: Mapping[str, str] | None = None,
        python: str | None = None,
    ) -> None:
        if mode not in ("mpi", "serial"):
            raise ValueError(f"mode must be 'mpi' or 'serial', not {mode!r}")
        self.site_dir = Path(site_dir).resolve()
        self.mode = mode
        self.batch_job_id = batch_job_id
        self.wall_time_min = wall_time_min
        self.hostfile = Path(hostfile).resolve() if hostfile else None
        self.max_idle_sec = max_idle_sec
        self.tags = dict(tags or {})
        self.env = dict(env or {})
        self.python = python or sys.executable
        self.proc: subprocess.Popen[bytes] | None = None
        self._out: IO[bytes] | None = None
        #: the launcher's stdout+stderr (its own log is SITE/log/launcher-<pid>.log).
        self.console_path: Path | None = None

    def argv(self) -> list[str]:
        cmd = [*module_command("runner.cli.main", python=self.python), "launcher"]
        cmd += ["--site", str(self.site_dir), "--mode", self.mode]
        if self.batch_job_id is not None:
            cmd += ["--batch-job-id", str(self.batch_job_id)]
        if self.wall_time_min is not None:
            cmd += ["--wall-time-min", str(self.wall_time_min)]
        if self.hostfile is not None:
            cmd += ["--hostfile", str(self.hostfile)]
        if self.max_idle_sec is not None:
            cmd += ["--max-idle-sec", str(self.max_idle_sec)]
        for key, value in self.tags.items():
            cmd += ["--tag", f"{key}={value}"]
        return cmd

    @property
    def pid(self) -> int:
        if self.proc is None:
            raise RuntimeError("launcher not started")
        return self.proc.pid

    @property
    def log_path(self) -> Path:
        """The launcher's own log (MPI mode; serial mode's rank 0 logs under its own pid)."""
        return self.site_dir / "log" / f"launcher-{self.pid}.log"

    def start(self) -> LauncherProcess:
        if self.proc is not None:
            raise RuntimeError("launcher already started")
        log_dir = self.site_dir / "log"
        log_dir.mkdir(parents=True, exist_ok=True)
        self.console_path = log_dir / f"launcher-console-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.log"
        self._out = self.console_path.open("ab")
        self.proc = subprocess.Popen(
            self.argv(),
            env={**os.environ, **self.env},
            stdin=subprocess.DEVNULL,
            stdout=self._out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        return self

    def poll(self) -> int | None:
        return None if self.proc is None else self.proc.poll()

    @property
    def returncode(self) -> int | None:
        return self.poll()

    def wait(self, timeout: float | None = None) -> int:
        """Wait for the launcher to end; ``subprocess.TimeoutExpired`` after ``timeout``."""
        if self.proc is None:
            raise RuntimeError("launcher not started")
        return self.proc.wait(timeout)

    def stop(self, grace: float = 30.0) -> int | None:
        """SIGTERM by PID, wait up to ``grace`` seconds, then SIGKILL."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self._signal(signal.SIGTERM)
            try:
                self.proc.wait(grace)
            except subprocess.TimeoutExpired:
                self._signal(signal.SIGKILL)
                self.proc.wait(10)
        self._close()
        return self.proc.returncode

    def kill(self) -> None:
        """SIGKILL by PID, like a node crash (the launcher cannot clean up)."""
        if self.proc is not None and self.proc.poll() is None:
            self._signal(signal.SIGKILL)
            self.proc.wait(10)
        self._close()

    def _signal(self, sig: int) -> None:
        assert self.proc is not None
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.proc.pid, sig)

    def _close(self) -> None:
        if self._out is not None:
            self._out.close()
            self._out = None

    def console_tail(self, nbytes: int = 4000) -> str:
        if self.console_path is None or not self.console_path.exists():
            return ""
        return self.console_path.read_bytes()[-nbytes:].decode("utf-8", "replace")

    def __enter__(self) -> LauncherProcess:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
