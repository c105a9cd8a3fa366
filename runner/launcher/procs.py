"""Child processes of a launcher: start, notice exits at once, enforce wall times.

Exits are event driven: every child's pidfd sits in one ``selectors`` selector,
next to a wake-up pipe (signals, other threads), so ``wait()`` returns the moment
a child ends instead of polling on a fixed period. Wall-time deadlines become the
selector's timeout.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import selectors
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

#: seconds between SIGTERM and SIGKILL when a child must stop.
KILL_GRACE_SEC = 3.0
#: bytes of a job's output kept for the RUN_ERROR event.
TAIL_BYTES = 2048

_PR_SET_PDEATHSIG = 1
_libc: ctypes.CDLL | None = None


def _die_with_parent() -> None:  # runs in the child between fork and exec
    if _libc is not None:
        _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def _load_libc() -> ctypes.CDLL | None:
    global _libc
    if _libc is None:
        try:
            _libc = ctypes.CDLL(None, use_errno=True)
        except OSError:
            _libc = None
    return _libc


def die_with_parent_self() -> None:
    """Ask the kernel to SIGTERM this process when its parent dies (Linux only)."""
    libc = _load_libc()
    if libc is not None:
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def tail(path: Path, nbytes: int = TAIL_BYTES) -> str:
    """The last ``nbytes`` of a file as text (empty if it does not exist)."""
    try:
        with path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - nbytes))
            data = fh.read()
    except OSError:
        return ""
    text = data.decode("utf-8", errors="replace")
    if size > nbytes and "\n" in text:
        text = text.split("\n", 1)[1]
    return text


@dataclass
class Child:
    key: int
    proc: subprocess.Popen[bytes]
    pidfd: int
    started: float
    deadline: float | None
    out_path: Path
    term_sent: float | None = None
    timed_out: bool = False
    stopped: bool = False


@dataclass(frozen=True)
class Exit:
    """A child that ended: its return code, when it ran, and why it ended."""

    key: int
    returncode: int
    started: float
    ended: float
    timed_out: bool
    stopped: bool
    out_path: Path

    def output_tail(self) -> str:
        return tail(self.out_path)


class StartError(RuntimeError):
    """The start command itself could not run (missing executable, bad workdir)."""


class ProcessGroup:
    """The running children of one launcher process, keyed by job id.

    ``die_with_parent`` makes each child receive SIGTERM if the launcher is killed
    (even with SIGKILL), so a job never outlives the session that holds it; it costs
    a fork instead of a vfork per start.
    """

    def __init__(self, *, die_with_parent: bool = False, new_session: bool = True) -> None:
        self._sel = selectors.DefaultSelector()
        self._children: dict[int, Child] = {}
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._sel.register(self._wake_r, selectors.EVENT_READ, None)
        self.die_with_parent = die_with_parent
        self.new_session = new_session
        if die_with_parent:
            _load_libc()

    def __len__(self) -> int:
        return len(self._children)

    def keys(self) -> list[int]:
        return list(self._children)

    @property
    def wake_fd(self) -> int:
        """Write a byte here (e.g. ``signal.set_wakeup_fd``) to end a ``wait()`` early."""
        return self._wake_w

    def wake(self) -> None:
        with contextlib.suppress(BlockingIOError):
            os.write(self._wake_w, b"\0")

    def start(
        self,
        key: int,
        argv: Sequence[str],
        *,
        cwd: Path,
        env: Mapping[str, str],
        out_path: Path,
        wall_time_sec: float | None = None,
    ) -> float:
        """Start ``argv`` with stdout+stderr appended to ``out_path``; returns the start time."""
        if key in self._children:
            raise ValueError(f"child {key} is already running")
        try:
            with out_path.open("ab") as out:
                proc = subprocess.Popen(
                    list(argv),
                    cwd=cwd,
                    env=dict(env),
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=self.new_session,
                    preexec_fn=_die_with_parent if self.die_with_parent else None,
                    close_fds=True,
                )
        except OSError as exc:
            raise StartError(f"cannot start {argv[0]!r}: {exc.strerror or exc}") from exc
        now = time.time()
        pidfd = os.pidfd_open(proc.pid)
        deadline = now + wall_time_sec if wall_time_sec else None
        self._children[key] = Child(key, proc, pidfd, now, deadline, out_path)
        self._sel.register(pidfd, selectors.EVENT_READ, key)
        return now

    def _signal(self, child: Child, sig: int) -> None:
        try:
            if self.new_session:
                os.killpg(child.proc.pid, sig)
            else:
                child.proc.send_signal(sig)
        except (ProcessLookupError, PermissionError):
            pass

    def terminate(self, key: int, *, timed_out: bool = False) -> None:
        """Ask one child to stop (SIGTERM to its process group, SIGKILL after a grace)."""
        child = self._children.get(key)
        if child is None or child.term_sent is not None:
            return
        child.timed_out = child.timed_out or timed_out
        child.stopped = not timed_out
        child.term_sent = time.time()
        self._signal(child, signal.SIGTERM)

    def terminate_all(self) -> None:
        for key in list(self._children):
            self.terminate(key)

    def next_timer(self) -> float | None:
        """Seconds until the next deadline or kill escalation (None: no timer)."""
        times = []
        for c in self._children.values():
            if c.term_sent is not None:
                times.append(c.term_sent + KILL_GRACE_SEC)
            elif c.deadline is not None:
                times.append(c.deadline)
        return max(0.0, min(times) - time.time()) if times else None

    def _check_timers(self) -> None:
        now = time.time()
        for c in list(self._children.values()):
            if c.term_sent is None and c.deadline is not None and now >= c.deadline:
                log.info("job %s exceeded its wall time: stopping it", c.key)
                self.terminate(c.key, timed_out=True)
            elif c.term_sent is not None and now >= c.term_sent + KILL_GRACE_SEC:
                self._signal(c, signal.SIGKILL)

    def wait(self, timeout: float | None) -> list[Exit]:
        """Block until a child ends, a timer fires, ``wake()`` is called, or ``timeout`` passes."""
        timer = self.next_timer()
        if timer is not None:
            timeout = timer if timeout is None else min(timeout, timer)
        exits: list[Exit] = []
        for skey, _ in self._sel.select(timeout):
            if skey.data is None:
                try:
                    while os.read(self._wake_r, 4096):
                        pass
                except BlockingIOError:
                    pass
                continue
            exits.extend(self._reap(skey.data))
        self._check_timers()
        return exits

    def reap_ready(self) -> list[Exit]:
        """Collect children that already ended, without blocking."""
        return self.wait(0)

    def _reap(self, key: int) -> list[Exit]:
        child = self._children.get(key)
        if child is None:
            return []
        rc = child.proc.poll()
        if rc is None:
            return []
        ended = time.time()
        self._sel.unregister(child.pidfd)
        os.close(child.pidfd)
        del self._children[key]
        return [Exit(key, rc, child.started, ended, child.timed_out, child.stopped, child.out_path)]

    def close(self) -> None:
        for c in self._children.values():
            self._sel.unregister(c.pidfd)
            os.close(c.pidfd)
        self._children.clear()
        self._sel.close()
        os.close(self._wake_r)
        os.close(self._wake_w)
