"""Child processes of a launcher: start, notice exits at once, enforce wall times.

Exits are event driven: every child's pidfd sits in one ``selectors`` selector,
next to a wake-up pipe (signals, other threads), so ``wait()`` returns the moment
a child ends instead of polling on a fixed period. Wall-time deadlines become the
selector's timeout.

Starting a process blocks its caller until the child has exec'd, which on a busy
machine is mostly waiting for the scheduler. With ``spawn_threads`` the starts run
in a few threads (the GIL is released while waiting), so S slots start S
processes at once like S separate spawners would, and the loop stays free to
notice exits.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import queue
import selectors
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
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


@dataclass
class Events:
    """What happened during one ``wait()``."""

    started: list[tuple[int, float]] = field(default_factory=list)
    exits: list[Exit] = field(default_factory=list)
    #: starts that failed (missing executable, bad workdir): key, message.
    start_errors: list[tuple[int, str]] = field(default_factory=list)
    #: submitted but never started because the group is stopping.
    cancelled: list[int] = field(default_factory=list)


class StartError(RuntimeError):
    """The start command itself could not run (missing executable, bad workdir)."""


@dataclass(frozen=True)
class _Spawn:
    key: int
    argv: list[str]
    cwd: Path
    env: dict[str, str]
    out_path: Path
    wall_time_sec: float | None
    prepare: Callable[[], None] | None = None


class ProcessGroup:
    """The children of one launcher process, keyed by job id.

    ``submit()`` a start, then ``wait()`` reports starts, exits and failed starts as
    they happen. ``die_with_parent`` makes each child receive SIGTERM if the launcher
    is killed (even with SIGKILL), so a job never outlives the session that holds
    it; it costs a fork instead of a vfork per start.
    """

    def __init__(
        self, *, die_with_parent: bool = False, new_session: bool = True, spawn_threads: int = 0
    ) -> None:
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
        self._spawn_threads = spawn_threads
        self._threads: list[threading.Thread] = []
        self._todo: queue.SimpleQueue[_Spawn | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        #: results of spawns not yet adopted by the loop: (spawn, proc | error, started)
        self._done: list[tuple[_Spawn, subprocess.Popen[bytes] | str, float]] = []
        #: submitted, not yet adopted (counts as running for the caller)
        self._starting: set[int] = set()
        self._kill_on_adopt: set[int] = set()
        self._closing = False

    def __len__(self) -> int:
        return len(self._children) + len(self._starting)

    def keys(self) -> list[int]:
        return [*self._children, *self._starting]

    @property
    def wake_fd(self) -> int:
        """Write a byte here (e.g. ``signal.set_wakeup_fd``) to end a ``wait()`` early."""
        return self._wake_w

    def wake(self) -> None:
        with contextlib.suppress(BlockingIOError):
            os.write(self._wake_w, b"\0")

    # ------------------------------------------------------------ starting

    def submit(
        self,
        key: int,
        argv: Sequence[str],
        *,
        cwd: Path,
        env: Mapping[str, str],
        out_path: Path,
        wall_time_sec: float | None = None,
        prepare: Callable[[], None] | None = None,
    ) -> None:
        """Start ``argv`` (stdout+stderr appended to ``out_path``); ``wait()`` reports the start.

        ``prepare`` (e.g. making the workdir) runs just before, in the starting thread;
        an OSError from it is reported like a failed start.
        """
        if key in self._children or key in self._starting:
            raise ValueError(f"child {key} is already running")
        spawn = _Spawn(key, list(argv), cwd, dict(env), out_path, wall_time_sec, prepare)
        self._starting.add(key)
        if not self._spawn_threads:
            self._done.append(self._spawn(spawn))
            return
        if not self._threads:
            for i in range(self._spawn_threads):
                t = threading.Thread(target=self._spawner, name=f"tolu-spawn-{i}", daemon=True)
                t.start()
                self._threads.append(t)
        self._todo.put(spawn)

    def _spawn(self, spawn: _Spawn) -> tuple[_Spawn, subprocess.Popen[bytes] | str, float]:
        try:
            if spawn.prepare is not None:
                spawn.prepare()
            with spawn.out_path.open("ab") as out:
                proc = subprocess.Popen(
                    spawn.argv,
                    cwd=spawn.cwd,
                    env=spawn.env,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=self.new_session,
                    preexec_fn=_die_with_parent if self.die_with_parent else None,
                    close_fds=True,
                )
        except OSError as exc:
            where = f" ({exc.filename})" if exc.filename and exc.filename != spawn.argv[0] else ""
            return spawn, f"cannot start {spawn.argv[0]!r}: {exc.strerror or exc}{where}", time.time()
        return spawn, proc, time.time()

    def _spawner(self) -> None:
        while True:
            spawn = self._todo.get()
            if spawn is None:
                return
            if self._closing:
                result: tuple[_Spawn, subprocess.Popen[bytes] | str, float] = (spawn, "", 0.0)
            else:
                result = self._spawn(spawn)
            with self._lock:
                self._done.append(result)
            self.wake()

    def _adopt(self, ev: Events) -> None:
        with self._lock:
            done, self._done = self._done, []
        for spawn, proc, started in done:
            self._starting.discard(spawn.key)
            if isinstance(proc, str):
                if proc:
                    ev.start_errors.append((spawn.key, proc))
                else:
                    ev.cancelled.append(spawn.key)
                continue
            pidfd = os.pidfd_open(proc.pid)
            deadline = started + spawn.wall_time_sec if spawn.wall_time_sec else None
            child = Child(spawn.key, proc, pidfd, started, deadline, spawn.out_path)
            self._children[spawn.key] = child
            self._sel.register(pidfd, selectors.EVENT_READ, spawn.key)
            ev.started.append((spawn.key, started))
            if spawn.key in self._kill_on_adopt:
                self._kill_on_adopt.discard(spawn.key)
                self.terminate(spawn.key)

    # ------------------------------------------------------------ stopping

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
        if key in self._starting:
            self._kill_on_adopt.add(key)
            return
        child = self._children.get(key)
        if child is None or child.term_sent is not None:
            return
        child.timed_out = child.timed_out or timed_out
        child.stopped = not timed_out
        child.term_sent = time.time()
        self._signal(child, signal.SIGTERM)

    def terminate_all(self) -> None:
        """Stop every child; submitted starts not yet begun are cancelled."""
        self._closing = True
        for key in self.keys():
            self.terminate(key)

    # ------------------------------------------------------------ waiting

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

    def wait(self, timeout: float | None) -> Events:
        """Block until something happens (a start, an exit, a timer, ``wake()``) or ``timeout``."""
        ev = Events()
        self._adopt(ev)
        if ev.started or ev.start_errors or ev.cancelled:
            timeout = 0.0
        timer = self.next_timer()
        if timer is not None:
            timeout = timer if timeout is None else min(timeout, timer)
        for skey, _ in self._sel.select(timeout):
            if skey.data is None:
                try:
                    while os.read(self._wake_r, 4096):
                        pass
                except BlockingIOError:
                    pass
                continue
            exit_ = self._reap(skey.data)
            if exit_ is not None:
                ev.exits.append(exit_)
        self._adopt(ev)
        self._check_timers()
        return ev

    def _reap(self, key: int) -> Exit | None:
        child = self._children.get(key)
        if child is None:
            return None
        rc = child.proc.poll()
        if rc is None:
            return None
        ended = time.time()
        self._sel.unregister(child.pidfd)
        os.close(child.pidfd)
        del self._children[key]
        return Exit(key, rc, child.started, ended, child.timed_out, child.stopped, child.out_path)

    def close(self) -> None:
        self._closing = True
        for _ in self._threads:
            self._todo.put(None)
        for t in self._threads:
            t.join(timeout=10)
        for c in self._children.values():
            self._sel.unregister(c.pidfd)
            os.close(c.pidfd)
        self._children.clear()
        self._sel.close()
        os.close(self._wake_r)
        os.close(self._wake_w)
