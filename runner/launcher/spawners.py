"""The coordinator's side of a node's spawners: hand out batches of starts, collect batches of outcomes.

``SpawnerPool`` starts one spawner process per core it is given
(runner/launcher/spawner.py) and keeps a socket to each. ``submit()`` only queues a
start; ``flush()`` (and ``wait()``) sends each spawner its queued starts as one
message. ``wait()`` sleeps in one selector on every spawner's socket and a wake-up
pipe (signals, the fetcher thread), and returns what the spawners reported: starts,
exits, failed starts, each with the time it really happened. The per-task work —
``posix_spawn``, waiting, the exit note, reading a result — happens in the spawners,
on their own cores; what the coordinator does per task is to pick a spawner and
move a tuple.
"""

from __future__ import annotations

import contextlib
import logging
import os
import selectors
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from runner.interpreter import module_command
from runner.launcher.spawner import EVERY_START, Batch, Ended, Frames, Spawn, frame

log = logging.getLogger(__name__)

#: how long a spawner may take to start (an interpreter on a node's shared file system)
READY_SEC = 120.0

#: a task that ended: key, return code, start and end time, why, output tail, result.
Exit = Ended


@dataclass
class Events:
    """What the spawners reported during one ``wait()``."""

    started: list[tuple[int, float]] = field(default_factory=list)
    exits: list[Ended] = field(default_factory=list)
    #: starts that failed (missing executable, bad workdir): key, message.
    start_errors: list[tuple[int, str]] = field(default_factory=list)
    #: submitted but never started because the pool is stopping.
    cancelled: list[int] = field(default_factory=list)


class SpawnerError(RuntimeError):
    """A spawner process could not be started."""


@dataclass
class _Link:
    """One spawner process and the coordinator's end of its socket."""

    proc: subprocess.Popen[bytes]
    sock: socket.socket
    frames: Frames = field(default_factory=Frames)
    #: starts queued for the next flush
    queued: list[Spawn] = field(default_factory=list)
    #: bytes not yet taken by the socket (never blocks the coordinator)
    unsent: bytes = b""
    alive: bool = True
    #: the selector's mask for the socket now (read, and write while bytes wait)
    watching: int = selectors.EVENT_READ
    #: it has said it is up (its first batch, empty)
    ready: bool = False


class SpawnerPool:
    """A node's spawner processes, seen from its coordinator, keyed by job id."""

    def __init__(
        self,
        count: int,
        base_env: Mapping[str, str],
        *,
        python: str | None = None,
        log_path: str | os.PathLike[str] | None = None,
        journal_path: str | os.PathLike[str] | None = None,
        journal_every_start: bool = False,
    ) -> None:
        self.count = max(1, count)
        #: the coordinator's outcome journal: spawners note there the starts of tasks
        #: queued behind others, or of every task with ``journal_every_start``
        #: (spawner.Spawner._journal_start); None: they do not
        self.journal_path = journal_path
        self.journal_every_start = journal_every_start
        self.base_env = dict(base_env)
        self.python = python
        #: where the spawners' own stdout and stderr go (a traceback, should one die)
        self.log_path = log_path
        self._links: list[_Link] = []
        self._sel = selectors.DefaultSelector()
        self._wake_r, self._wake_w = os.pipe()
        #: wake() may come from another thread (the fetcher's) while close() runs: the
        #: pipe is closed under this lock, so no byte ever goes to a number reused since
        self._wake_lock = threading.Lock()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._sel.register(self._wake_r, selectors.EVENT_READ, None)
        #: key -> the spawner running (or starting) it
        self._where: dict[int, int] = {}
        #: how many of ``_where``'s tasks each spawner holds (a new chain goes to the least held)
        self._held: list[int] = []
        self._next = 0
        self._closing = False
        #: queued starts dropped by terminate_all(), reported by the next wait()
        self._cancelled: list[int] = []

    # ------------------------------------------------------------ life

    def start(self) -> SpawnerPool:
        # Not the coordinator's stdout/stderr: under mpiexec those are pipes to Hydra's
        # proxy, which waits for every writer to close them before it reports the rank
        # gone; a spawner holding one could keep mpiexec from ending.
        try:
            out = open(self.log_path or os.devnull, "ab")  # noqa: SIM115
        except OSError:  # e.g. no log directory on this node: better no log than no spawner
            out = open(os.devnull, "ab")  # noqa: SIM115
        try:
            for _ in range(self.count):
                self._start_one(out)
        finally:
            out.close()
        log.info("%d spawner process(es): %s", self.count, ",".join(str(lk.proc.pid) for lk in self._links))
        return self

    def wait_ready(self, timeout: float = READY_SEC) -> None:
        """Block until every spawner has said it is up (its interpreter started, its first
        message read). Call it before the first ``submit()``, and before taking jobs:
        the first tasks then start at once, without sharing the cores with the
        spawners' own start-up."""
        deadline = time.monotonic() + timeout
        while any(lk.alive and not lk.ready for lk in self._links):
            left = deadline - time.monotonic()
            if left <= 0:
                raise SpawnerError(f"a spawner process did not start within {timeout:g} s")
            self.wait(left)  # nothing was submitted: there is nothing to report yet
        if not any(lk.alive for lk in self._links):
            codes = ", ".join(str(lk.proc.poll()) for lk in self._links)
            raise SpawnerError(f"no spawner process started (exit {codes}); see {self.log_path or 'its log'}")

    def _journal_args(self) -> list[str]:
        if self.journal_path is None:
            return []
        return [os.fspath(self.journal_path), *([EVERY_START] if self.journal_every_start else [])]

    def _start_one(self, out: Any) -> None:
        ours, theirs = socket.socketpair()
        try:
            proc = subprocess.Popen(
                [*module_command("runner.launcher.spawner", python=self.python),
                 str(theirs.fileno()), str(os.getpid()),
                 *self._journal_args()],
                pass_fds=(theirs.fileno(),),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                close_fds=True,
            )
        except OSError as exc:
            raise SpawnerError(f"cannot start a spawner process: {exc}") from exc
        finally:
            theirs.close()
        # one that died at once (a broken interpreter) is told by its EOF: wait_ready()
        with contextlib.suppress(OSError):
            ours.sendall(frame(self.base_env))
        link = _Link(proc, ours)
        self._links.append(link)
        self._held.append(0)
        self._sel.register(ours, selectors.EVENT_READ, link)

    @property
    def pids(self) -> list[int]:
        return [lk.proc.pid for lk in self._links]

    def __len__(self) -> int:
        return len(self._where)

    def keys(self) -> list[int]:
        return list(self._where)

    @property
    def wake_fd(self) -> int:
        """Write a byte here (e.g. ``signal.set_wakeup_fd``) to end a ``wait()`` early."""
        return self._wake_w

    def wake(self) -> None:
        """End a ``wait()`` early; from any thread, and a no-op once the pool is closed."""
        with self._wake_lock, contextlib.suppress(BlockingIOError):
            if self._wake_w >= 0:
                os.write(self._wake_w, b"\0")

    # ------------------------------------------------------------ starting

    def submit(
        self,
        key: int,
        argv: list[str],
        *,
        workdir: str,
        out_path: str,
        env: dict[str, str] | None = None,
        wall_time_sec: float | None = None,
        note: tuple[int, int, int] | None = None,
        python: bool = False,
        after: int | None = None,
        ignore_sigpipe: bool = False,
        low: int = 0,
    ) -> None:
        """Queue a start of ``argv`` in ``workdir`` with ``env`` over the base environment;
        it goes out with the next ``flush()`` or ``wait()``, which reports it started.

        ``after``: start it in the slot of that task, the moment that one ends (same
        spawner, no round trip through the coordinator). ``low``: when it starts there
        with this few tasks or fewer queued behind it, its spawner reports at once
        (``Spawn.low``).
        """
        if key in self._where:
            raise ValueError(f"task {key} is already running")
        i = self._where.get(after, -1) if after is not None else -1
        if i < 0:
            i = self._least_held()
            after = None
        self._where[key] = i
        self._held[i] += 1
        spawn = Spawn(
            key, argv, workdir, env or {}, out_path, wall_time_sec or 0.0, note, python, after,
            ignore_sigpipe, True, low,
        )
        self._links[i].queued.append(spawn)

    def _least_held(self) -> int:
        """The live spawner holding the fewest tasks (ties: in turn), for a task that
        follows none: two chains on one spawner would wait for each other's starts
        while another spawner, and its core, idled."""
        links, held, n = self._links, self._held, len(self._links)
        best = -1
        for step in range(n):
            i = (self._next + step) % n
            if links[i].alive and (best < 0 or held[i] < held[best]):
                best = i
        if best < 0:
            raise SpawnerError("no spawner process is alive")
        self._next = (best + 1) % n
        return best

    def _forget(self, key: int) -> None:
        i = self._where.pop(key, None)
        if i is not None:
            self._held[i] -= 1

    def flush(self) -> None:
        for link in self._links:
            if link.queued:
                batch, link.queued = link.queued, []
                self._send(link, ("start", batch))

    def _send(self, link: _Link, msg: object) -> None:
        if not link.alive:
            return
        link.unsent += frame(msg)
        self._push(link)

    def _push(self, link: _Link) -> None:
        try:
            sent = link.sock.send(link.unsent, socket.MSG_DONTWAIT)
        except BlockingIOError:
            sent = 0
        except OSError:
            sent = len(link.unsent)  # it is gone; its EOF tells the rest
        link.unsent = link.unsent[sent:]
        events = selectors.EVENT_READ | (selectors.EVENT_WRITE if link.unsent else 0)
        if events != link.watching:  # one epoll_ctl less per batch when nothing waits
            self._sel.modify(link.sock, events, link)
            link.watching = events

    # ------------------------------------------------------------ stopping

    def terminate(self, key: int) -> None:
        """Stop one task (SIGTERM to its process group, SIGKILL after a grace); it ends stopped."""
        i = self._where.get(key)
        if i is not None:
            self._send(self._links[i], ("term", [key]))

    def terminate_all(self) -> None:
        """Stop every task; starts not yet begun are cancelled. The spawners exit when their
        tasks have ended; ``wait()`` reports the ends."""
        self._closing = True
        for link in self._links:
            if link.queued:
                for spawn in link.queued:
                    self._forget(spawn.key)
                self._cancelled += [s.key for s in link.queued]
                link.queued = []
            self._send(link, ("stop",))

    # ------------------------------------------------------------ waiting

    def wait(self, timeout: float | None) -> Events:
        """Send queued starts, then block until a spawner reports, ``wake()`` or ``timeout``."""
        self.flush()
        ev = Events()
        if self._cancelled:
            ev.cancelled, self._cancelled = self._cancelled, []
            timeout = 0.0
        for skey, mask in self._sel.select(timeout):
            link = skey.data
            if link is None:
                with contextlib.suppress(BlockingIOError):
                    while os.read(self._wake_r, 4096):
                        pass
                continue
            if mask & selectors.EVENT_WRITE:
                self._push(link)
            if mask & selectors.EVENT_READ:
                self._read(link, ev)
        return ev

    def _read(self, link: _Link, ev: Events) -> None:
        batches, closed = link.frames.receive(link.sock)
        link.ready = link.ready or bool(batches)
        for batch in batches:
            self._take(batch, ev)
        if closed:
            self._lost(link, ev)

    def _take(self, batch: Batch, ev: Events) -> None:
        ev.started += batch.started
        for ended in batch.ended:
            self._forget(ended.key)
        ev.exits += batch.ended
        for key, message, _t in batch.errors:
            self._forget(key)
            if message:
                ev.start_errors.append((key, message))
            else:
                ev.cancelled.append(key)

    def _lost(self, link: _Link, ev: Events) -> None:
        """A spawner's socket closed: at the end (after ``stop``) that is its goodbye;
        otherwise it died, and its tasks are reported as failed starts with the reason."""
        link.alive = False
        self._sel.unregister(link.sock)
        link.sock.close()
        index = self._links.index(link)
        lost = [key for key, i in self._where.items() if i == index]
        code = link.proc.poll()
        if lost:
            log.error("spawner process %d ended (exit %s) with %d task(s)", link.proc.pid, code, len(lost))
        elif not self._closing:
            # e.g. a SIGTERM sent to the launcher's whole process group reached the
            # spawner first: it stopped its tasks and reported them; nothing is lost
            log.warning("spawner process %d ended (exit %s) holding no tasks", link.proc.pid, code)
        for key in lost:
            self._forget(key)
            ev.start_errors.append((key, f"the spawner process running it ended (exit {link.proc.poll()})"))

    def close(self, timeout: float = 10.0) -> None:
        """Ask every spawner to stop (their tasks end stopped) and reap them."""
        self._closing = True
        for link in self._links:
            if link.alive:
                self._send(link, ("stop",))
        deadline = time.monotonic() + timeout
        while any(lk.alive for lk in self._links) and time.monotonic() < deadline:
            self.wait(0.1)
        for link in self._links:
            if link.alive:
                link.alive = False
                self._sel.unregister(link.sock)
                link.sock.close()
            try:
                link.proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                link.proc.kill()
                link.proc.wait()
        self._sel.close()
        with self._wake_lock:
            if self._wake_w < 0:  # closed before
                return
            if threading.current_thread() is threading.main_thread():
                # signals woke this pool (signal.set_wakeup_fd): not a closed pipe, or
                # whatever file gets its number next
                other = signal.set_wakeup_fd(-1)
                if other not in (-1, self._wake_w):  # someone else's: theirs again
                    signal.set_wakeup_fd(other, warn_on_full_buffer=False)
            os.close(self._wake_r)
            os.close(self._wake_w)
            self._wake_r = self._wake_w = -1
