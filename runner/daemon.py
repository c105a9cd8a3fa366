"""Background processes: start one detached with a log file, know it by a pid file,
stop it by PID.

``tolu server up/down`` (through ``ServerProcess``) and ``tolu site start/stop`` go
through here, so they keep the same rules:

- a process starts in a session of its own (Ctrl-C in the terminal does not reach
  it), stdin from /dev/null, stdout and stderr appended to its log file;
- :func:`start` returns once the caller's ``ready`` condition holds; a process that
  exits first, or is not ready in time, raises :class:`StartError` with the exit code
  and the tail of its log (and is stopped if it still runs);
- a :class:`PidFile` records the pid *and the process's start time*, so a pid the
  kernel has since given to another process is never taken for ours: such a stale
  file reads as "not running";
- :func:`stop`: SIGTERM, SIGKILL after a timeout, then wait until the process is gone;
- :func:`die_with_parent`: a worker process that must not outlive the one that
  started it (a multi-worker server's workers) asks the kernel for SIGTERM then.

The bottom floor: imports nothing of runner.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

#: how often start() and stop() look again.
POLL_SEC = 0.1
#: seconds a recorded start time may differ from the live process's: its start time is
#: computed from the boot time, which moves a little when the clock is adjusted.
START_TIME_SLACK = 1.0


#: prctl(2) option: the signal this process gets when its parent dies.
_PR_SET_PDEATHSIG = 1


def die_with_parent(parent: int) -> bool:
    """Have the kernel SIGTERM this process when ``parent`` (its parent) exits, however
    it exits (SIGKILL too). False where it cannot (not Linux), or when ``parent`` is
    no longer this process's parent: it is gone already, and the caller should go too.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        return False
    # checked after prctl: a parent that died before it will never signal us
    return os.getppid() == parent


class StartError(RuntimeError):
    """The process exited before it was ready (``exit_code``), or was not ready in time
    (``exit_code`` None; it was stopped)."""

    def __init__(
        self, message: str, *, command: Sequence[str], log_path: Path, exit_code: int | None
    ) -> None:
        self.command = list(command)
        self.log_path = log_path
        self.log_tail = tail(log_path)
        self.exit_code = exit_code
        super().__init__(f"{message}\ncommand: {shlex.join(self.command)}\nlog: {log_path}\n{self.log_tail}")


def tail(path: Path, lines: int = 30) -> str:
    """The last ``lines`` lines of a log file."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def start(
    command: Sequence[str],
    *,
    log_path: Path,
    ready: Callable[[subprocess.Popen[bytes]], bool],
    timeout: float,
    env: Mapping[str, str] | None = None,
    name: str = "the process",
) -> subprocess.Popen[bytes]:
    """Start ``command`` detached, its output appended to ``log_path``; return it once
    ``ready(process)`` is true."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            list(command),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=dict(env) if env is not None else None,
            start_new_session=True,
        )
    deadline = time.monotonic() + timeout
    while True:
        code = proc.poll()
        if code is not None:
            raise StartError(
                f"{name} exited with code {code} before it was ready",
                command=command,
                log_path=log_path,
                exit_code=code,
            )
        if ready(proc):
            return proc
        if time.monotonic() > deadline:
            stop(proc)
            raise StartError(
                f"{name} was not ready within {timeout:g} s (stopped it)",
                command=command,
                log_path=log_path,
                exit_code=None,
            )
        time.sleep(POLL_SEC)


@dataclass(frozen=True)
class Stopped:
    """How :func:`stop` ended: ``killed`` if SIGTERM was not enough; ``exit_code`` of a
    child of this process (None for another's)."""

    pid: int
    killed: bool
    exit_code: int | None


def stop(process: subprocess.Popen[Any] | psutil.Process, *, timeout: float = 10.0) -> Stopped:
    """SIGTERM ``process``, SIGKILL it if it still runs after ``timeout`` seconds, and
    return once it is gone.

    A ``Popen`` is our child and is reaped (its exit code comes back). A
    ``psutil.Process`` (see :meth:`PidFile.process`) is watched without being reaped:
    its exit status belongs to its parent, which may be waiting for it.
    """
    if isinstance(process, subprocess.Popen):
        if process.poll() is not None:
            return Stopped(process.pid, killed=False, exit_code=process.returncode)
        with contextlib.suppress(ProcessLookupError):
            process.terminate()
        try:
            process.wait(timeout)
            return Stopped(process.pid, killed=False, exit_code=process.returncode)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            process.wait()
            return Stopped(process.pid, killed=True, exit_code=process.returncode)
    with contextlib.suppress(psutil.NoSuchProcess):
        process.terminate()  # psutil refuses if the pid now belongs to another process
    if _wait_gone(process, timeout):
        return Stopped(process.pid, killed=False, exit_code=None)
    with contextlib.suppress(psutil.NoSuchProcess):
        process.kill()
    _wait_gone(process, None)
    return Stopped(process.pid, killed=True, exit_code=None)


def _gone(process: psutil.Process) -> bool:
    """Exited (a zombie has: it only waits for its parent to read its status)."""
    try:
        return not process.is_running() or process.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _wait_gone(process: psutil.Process, timeout: float | None) -> bool:
    deadline = None if timeout is None else time.monotonic() + timeout
    while not _gone(process):
        if deadline is not None and time.monotonic() >= deadline:
            return False
        time.sleep(POLL_SEC)
    return True


@dataclass(frozen=True)
class PidFile:
    """A pid file: JSON with ``pid``, the process's ``started`` time, and what its
    owner adds (e.g. ``url`` and ``log`` of a server)."""

    path: Path

    def write(self, pid: int | None = None, **info: Any) -> Path:
        """Record ``pid`` (default: this process) and its start time, atomically."""
        pid = os.getpid() if pid is None else pid
        record = {"pid": pid, "started": psutil.Process(pid).create_time(), **info}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(record) + "\n")
        os.replace(tmp, self.path)
        return self.path

    def read(self) -> dict[str, Any] | None:
        """What the file holds, running or not; None if it is missing or unreadable."""
        try:
            record = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return None
        if not isinstance(record, dict) or not isinstance(record.get("pid"), int):
            return None
        return record

    def process(self) -> psutil.Process | None:
        """The live process the file names, or None (no file, exited, a zombie, or a
        pid since reused by another process)."""
        record = self.read()
        if record is None:
            return None
        try:
            proc = psutil.Process(record["pid"])
            started = float(record.get("started", 0.0))
            if abs(proc.create_time() - started) > START_TIME_SLACK:
                return None
        except (psutil.NoSuchProcess, psutil.AccessDenied, TypeError, ValueError):
            return None
        return None if _gone(proc) else proc

    def running(self) -> int | None:
        """The pid of the live process the file names, or None."""
        proc = self.process()
        return None if proc is None else proc.pid

    def remove(self, pid: int | None = None) -> None:
        """Delete the file; with ``pid``, only if it still names that pid (a process
        started since keeps its own)."""
        if pid is not None:
            record = self.read()
            if record is not None and record["pid"] != pid:
                return
        self.path.unlink(missing_ok=True)
