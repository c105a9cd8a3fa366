"""A spawner: one of a node's per-core processes that start tasks, wait for them and batch what happened.

``python -P -m runner.launcher.spawner FD PARENT_PID [JOURNAL [every-start]]`` — FD is its end of a socket
pair with the node's coordinator (runner/launcher/spawners.py). Like a
HyperQueue worker or an mpi4py.futures worker, it takes the per-task work off the
coordinator, so starting, waiting and bookkeeping spread over the node's cores:

- a batch of starts comes in as one message; each task is started with
  ``posix_spawn`` (a vfork-style clone: no copy of this process's memory), in its
  own session, stdout+stderr appended to its ``job.out``, stdin from /dev/null;
- every child's pidfd sits in one epoll set with the socket and a signal pipe, so
  an exit is seen the moment it happens; the start and end times are taken here,
  right after the child has exec'd and right when it has ended;
- a clean exit is noted in the workdir before it is reported (crash safety, see
  workdir.note_success); a failure's output tail and a Python task's result are read
  here too;
- what happened goes back in batches: at once when the coordinator has something to
  do about it (a slot fell idle, its chain of queued tasks ran low, a start failed),
  else within ``FLUSH_SEC`` — the timestamps are taken here, so batching delays no
  recorded time, and the coordinator wakes once per batch, not per task.

Standard library only (with tolu's own stdlib-only helpers: workdir, deathsig, roles, leftovers),
so that it starts in a few milliseconds and stays small; it announces itself as a
``starter`` (runner/roles.py).

Messages are length-prefixed pickles (both ends are this package, on one machine):
first the base environment, then ``("start", [Spawn, ...])``, ``("term", [key,
...])``, ``("stop",)``. Out: one ``Batch`` per wake-up; the socket closes after the
last one.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import select
import signal
import socket
import struct
import sys
import time
from collections.abc import Mapping
from typing import Any, NamedTuple

from runner.launcher import leftovers
from runner.launcher import workdir as wd
from runner.launcher.deathsig import die_with_parent
from runner.roles import Role, announce

#: seconds between SIGTERM and SIGKILL when a task must stop.
KILL_GRACE_SEC = 3.0
#: longest an outcome the coordinator need not act on waits for company.
FLUSH_SEC = 0.05
#: a test switch, not a setting: seconds to wait before each task starts (docs/results.md, the
#: history gate's planted regression). Read once when the spawner starts; unset, the spawner
#: is the plain class and no task pays for the switch.
TEST_TASK_DELAY_ENV = "TOLU_TEST_TASK_DELAY"
#: bytes read from the socket at a time (into one buffer kept for the purpose).
READ_SIZE = 1 << 18
_LEN = struct.Struct("!I")
#: the argument after the journal's path that makes a spawner journal every start
EVERY_START = "every-start"
#: signals a task gets back at their defaults: Python ignores SIGPIPE and SIGXFSZ, and an
#: ignored signal stays ignored across exec (subprocess's restore_signals does the same).
RESTORED_SIGNALS = (signal.SIGPIPE, signal.SIGXFSZ, signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
KEEP_SIGPIPE_IGNORED = tuple(s for s in RESTORED_SIGNALS if s != signal.SIGPIPE)


class Spawn(NamedTuple):
    """One task to start."""

    key: int
    argv: list[str]
    workdir: str
    #: variables over the spawner's base environment
    env: dict[str, str]
    out_path: str
    #: seconds; 0: no limit
    wall_time_sec: float
    #: (job_id, session_id, attempt): note a clean exit in the workdir, and
    #: report a success an earlier session noted but never reported instead of running
    #: it again (workdir.lost_success); None: neither
    note: tuple[int, int, int] | None
    #: a Python-function task: read its result.json when it ends
    python: bool
    #: start when the task with this key has ended (it hands this one its slot); None: now
    after: int | None = None
    #: start it with SIGPIPE ignored (see app_launchers.AppLauncher.ignore_sigpipe)
    ignore_sigpipe: bool = False
    #: make the workdir first
    prepare: bool = True
    #: when this one starts in its slot with this few tasks or fewer queued behind it, the
    #: coordinator hears at once, so that it sends more before the slot runs dry (0: only
    #: when none is left; engine.refill_mark)
    low: int = 0


class Ended(NamedTuple):
    key: int
    returncode: int
    started: float
    ended: float
    timed_out: bool
    stopped: bool
    #: the output's tail when it failed, else ""
    tail: str
    #: a Python task's result.json, else {}
    result: dict[str, Any]
    #: not run: an earlier session's run of it succeeded (its note's times)
    recovered: bool = False


class Batch(NamedTuple):
    started: list[tuple[int, float]]
    ended: list[Ended]
    #: starts that failed: key, message, when
    errors: list[tuple[int, str, float]]


def queued_behind(next_of: Mapping[int, Spawn], key: int, most: int) -> int:
    """Tasks queued behind ``key`` in its slot (``next_of``: each task's successor by
    key), counted up to ``most + 1``: enough to tell whether there are more than ``most``."""
    n = 0
    while n <= most:
        spawn = next_of.get(key)
        if spawn is None:
            break
        key = spawn.key
        n += 1
    return n


def frame(obj: object) -> bytes:
    """One message on the wire: its length, then its pickle."""
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    return _LEN.pack(len(data)) + data


class Frames:
    """Whole messages out of a byte stream that arrives in pieces."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._chunk = bytearray(READ_SIZE)
        self._view = memoryview(self._chunk)

    def receive(self, sock: socket.socket) -> tuple[list[Any], bool]:
        """The whole messages the socket holds now, and whether it has closed; never blocks."""
        out: list[Any] = []
        while True:
            try:
                n = sock.recv_into(self._chunk, READ_SIZE, socket.MSG_DONTWAIT)
            except BlockingIOError:
                return out, False
            except OSError:
                n = 0
            if not n:
                return out, True
            out += self.feed(self._view[:n])
            if n < READ_SIZE:  # all there was: spare the recv that says so
                return out, False

    def feed(self, data: bytes | memoryview) -> list[Any]:
        buf = self._buf
        buf += data
        out = []
        pos = 0
        while len(buf) - pos >= 4:
            (size,) = _LEN.unpack_from(buf, pos)
            if len(buf) - pos - 4 < size:
                break
            out.append(pickle.loads(bytes(buf[pos + 4 : pos + 4 + size])))
            pos += 4 + size
        del buf[:pos]
        return out


class _Child:
    __slots__ = ("deadline", "pid", "pidfd", "spawn", "started", "stopped", "term_sent", "timed_out")

    def __init__(self, spawn: Spawn, pid: int, pidfd: int, started: float) -> None:
        self.spawn = spawn
        self.pid = pid
        self.pidfd = pidfd
        self.started = started
        self.deadline = started + spawn.wall_time_sec if spawn.wall_time_sec else None
        self.term_sent: float | None = None
        self.timed_out = False
        self.stopped = False


_OUT_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_APPEND
_STDERR_TO_STDOUT = (os.POSIX_SPAWN_DUP2, 1, 2)


class Spawner:
    def __init__(
        self,
        sock: socket.socket,
        base_env: dict[str, str],
        frames: Frames,
        journal: str | None = None,
        *,
        journal_every_start: bool = False,
    ) -> None:
        self.sock = sock
        self.base_env = base_env
        self.frames = frames
        #: the coordinator's outcome journal (runner/launcher/journal.py), where a start
        #: the coordinator does not know of yet is noted before it happens; None: not kept
        self.journal = journal
        #: note every start there (serial mode: the coordinator hands tasks to a worker
        #: that starts them when a slot frees), not only those queued behind another task
        #: (MPI mode: the coordinator journals the others before it sends them)
        self.journal_every_start = journal_every_start
        self._journal_fd = -1
        #: journal lines not written yet: they go out in one write just before the next
        #: start and before the next batch (a start is noted before it happens, an end
        #: before it is reported), so a task's end and its successor's start cost one
        self._journal_lines: list[str] = []
        #: every task's stdin: dup'ed in the child (close-on-exec here, not in the task)
        self._stdin = (os.POSIX_SPAWN_DUP2, os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC), 0)
        self.ep = select.epoll()
        self.children: dict[int, _Child] = {}  # by pidfd
        self.by_key: dict[int, _Child] = {}
        #: successors: started when the task with the key has ended
        self.next_of: dict[int, Spawn] = {}
        #: keys of successors not started yet
        self.waiting: set[int] = set()
        self.out = Batch([], [], [])
        #: the coordinator should hear now (a slot has nothing queued); else by flush_at
        self.urgent = False
        #: a chain ran low and the coordinator was told: not again until it sends starts
        self.asked = False
        self.flush_at: float | None = None
        self.stopping = False
        self.closed = False
        self._which: dict[tuple[str, str], str] = {}
        self.sig_r, sig_w = os.pipe()
        os.set_blocking(self.sig_r, False)
        os.set_blocking(sig_w, False)
        signal.set_wakeup_fd(sig_w, warn_on_full_buffer=False)
        signal.signal(signal.SIGTERM, self._on_term)
        # Ctrl-C in a terminal reaches every process of the group: the coordinator
        # decides when tasks stop, and tells us.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        self.ep.register(self.sig_r, select.EPOLLIN)
        self.ep.register(sock.fileno(), select.EPOLLIN)

    def _on_term(self, signum: int, frame: object) -> None:
        self.stopping = True

    # ------------------------------------------------------------ starting

    def _resolve(self, name: str, env: dict[str, str]) -> str:
        """``name`` looked up in the task's PATH, as subprocess does (cached)."""
        if "/" in name:
            return name
        path = env.get("PATH", os.defpath)
        found = self._which.get((name, path))
        if found is None:
            found = name
            for d in path.split(os.pathsep):
                cand = os.path.join(d or ".", name)
                if os.access(cand, os.X_OK) and not os.path.isdir(cand):
                    found = cand
                    break
            if os.path.isabs(found):
                self._which[(name, path)] = found
        return found

    def enqueue(self, spawn: Spawn) -> None:
        """Start ``spawn`` now, or when the task it follows ends."""
        after = spawn.after
        if self.stopping:
            self.out.errors.append((spawn.key, "", time.time()))  # cancelled
        elif after is not None and (after in self.by_key or after in self.waiting):
            self.next_of[after] = spawn
            self.waiting.add(spawn.key)
        else:
            self.start(spawn)

    def _follow(self, key: int) -> None:
        """The task ``key`` is done with its slot (ended, or never started): its successor's turn."""
        spawn = self.next_of.pop(key, None)
        if spawn is None:
            self.urgent = True  # the slot is idle: the coordinator has it back
            return
        self.waiting.discard(spawn.key)
        if self.stopping:
            self.out.errors.append((spawn.key, "", time.time()))  # cancelled, and what follows it
            self._follow(spawn.key)
            return
        self.start(spawn)
        if spawn.key not in self.next_of:
            self.urgent = True  # the last one queued in this slot: time to send more
        elif spawn.low and not self.asked and queued_behind(self.next_of, spawn.key, spawn.low) <= spawn.low:
            self.urgent = self.asked = True  # running low: more, before the slot runs dry

    def _recovered(self, spawn: Spawn) -> bool:
        """Report a success an earlier session noted but never reported, instead of a rerun."""
        assert spawn.note is not None
        record = wd.read_note(spawn.workdir)
        if record is None or not wd.lost_success(record, *spawn.note):
            return False
        started, ended = float(record["started"]), float(record["ended"])
        self.out.started.append((spawn.key, started))
        result = wd.read_result(spawn.workdir) if spawn.python else {}
        self.out.ended.append(Ended(spawn.key, 0, started, ended, False, False, "", result, recovered=True))
        self._follow(spawn.key)
        return True

    def _journal_start(self, note: tuple[int, int, int]) -> None:
        """Note in the coordinator's journal that this task starts now. In MPI mode the
        coordinator journals the RUNNING of the tasks it hands over itself, before it
        sends them; a task queued behind another starts here without it (and in serial
        mode every task does), and a coordinator killed before it hears of the start would
        leave a real start without a RUNNING Event. A dead launcher's successor turns these
        lines into RUNNING reports (journal.read)."""
        job_id, session_id, attempt = note
        self._journal(f'{{"start":{job_id},"s":{session_id},"a":{attempt},"t":{time.time()!r}}}\n')

    def _journal_end(self, note: tuple[int, int, int], started: float, ended: float) -> None:
        """Note in the journal that this task ended with 0, before it is reported. Once its
        start is in the journal, a dead launcher's successor sends that RUNNING, and the
        session's expiry then starts a new attempt, for which the workdir's exit note no
        longer speaks: this line makes the successor send the RUN_DONE too (journal.read),
        so a task that ended the instant before the kill is not run again."""
        job_id, session_id, attempt = note
        self._journal(
            f'{{"end":{job_id},"s":{session_id},"a":{attempt},"t0":{started!r},"t":{ended!r}}}\n'
        )

    def _journal(self, line: str) -> None:
        """Queue a line for the journal (written by ``_write_journal``)."""
        self._journal_lines.append(line)

    def _write_journal(self) -> None:
        """The queued lines in one O_APPEND write: whole lines, atomic beside the coordinator's."""
        lines = self._journal_lines
        if not lines:
            return
        self._journal_lines = []
        if self._journal_fd < 0:
            if self.journal is None:
                return
            try:
                self._journal_fd = os.open(self.journal, os.O_WRONLY | os.O_APPEND)
            except OSError:
                self.journal = None  # not there (yet): the coordinator's report is the only one
                return
        with contextlib.suppress(OSError):
            os.write(self._journal_fd, "".join(lines).encode())

    def start(self, spawn: Spawn) -> None:
        try:
            # a workdir that was not there cannot hold a note: the check costs nothing then
            fresh = wd.prepare(spawn.workdir) if spawn.prepare else False
            if not fresh and spawn.note is not None and self._recovered(spawn):
                return
            if spawn.python:  # a stale result of an earlier attempt is not this one's
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(os.path.join(spawn.workdir, wd.META_DIR, wd.RESULT_FILE))
            os.chdir(spawn.workdir)
            if (
                spawn.note is not None
                and self.journal is not None
                and (spawn.after is not None or self.journal_every_start)
            ):
                self._journal_start(spawn.note)
            env = {**self.base_env, **spawn.env} if spawn.env else self.base_env
            self._write_journal()
            # the slot is the task's from here: the clone and exec are part of its start
            started = time.time()
            pid = os.posix_spawn(
                self._resolve(spawn.argv[0], env),
                spawn.argv,
                env,
                file_actions=[self._stdin, (os.POSIX_SPAWN_OPEN, 1, spawn.out_path, _OUT_FLAGS, 0o644),
                              _STDERR_TO_STDOUT],
                setsid=True,
                # this process ignores SIGPIPE (as Python does): left out of the reset,
                # the child keeps ignoring it
                setsigdef=KEEP_SIGPIPE_IGNORED if spawn.ignore_sigpipe else RESTORED_SIGNALS,
            )
        except OSError as exc:
            name = spawn.argv[0] if spawn.argv else "(empty command)"
            where = f" ({exc.filename})" if exc.filename and exc.filename != name else ""
            message = f"cannot start {name!r}: {exc.strerror or exc}{where}"
            self.out.errors.append((spawn.key, message, time.time()))
            self.urgent = True
            self._follow(spawn.key)
            return
        pidfd = os.pidfd_open(pid)
        child = _Child(spawn, pid, pidfd, started)
        self.children[pidfd] = child
        self.by_key[spawn.key] = child
        self.ep.register(pidfd, select.EPOLLIN)
        self.out.started.append((spawn.key, started))

    # ------------------------------------------------------------ stopping

    def _signal(self, child: _Child, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(child.pid, sig)  # its own session: the whole group

    def terminate(self, child: _Child, *, timed_out: bool = False) -> None:
        if child.term_sent is not None:
            return
        child.timed_out = timed_out
        child.stopped = not timed_out
        child.term_sent = time.time()
        self._signal(child, signal.SIGTERM)

    def _timers(self) -> float | None:
        """Act on due deadlines; seconds until the next one (None: none)."""
        now = time.time()
        soonest: float | None = None
        for child in self.children.values():
            if child.term_sent is not None:
                due = child.term_sent + KILL_GRACE_SEC
                if now >= due:
                    self._signal(child, signal.SIGKILL)
                    due = now + KILL_GRACE_SEC
            elif child.deadline is not None:
                due = child.deadline
                if now >= due:
                    self.terminate(child, timed_out=True)
                    due = now + KILL_GRACE_SEC
            else:
                continue
            soonest = due if soonest is None else min(soonest, due)
        return None if soonest is None else max(0.0, soonest - now)

    # ------------------------------------------------------------ waiting

    def _reap(self, pidfd: int) -> None:
        try:
            res = os.waitid(os.P_PIDFD, pidfd, os.WEXITED | os.WNOHANG)
        except ChildProcessError:
            res = None
        if res is None:
            return
        ended = time.time()
        child = self.children.pop(pidfd)
        del self.by_key[child.spawn.key]
        # Out of the epoll set before the close: a close alone does not take it out while
        # another reference lives, and one does for a moment, in a child just spawned that
        # has not reached its close-on-exec yet: epoll would go on reporting a closed fd.
        self.ep.unregister(pidfd)
        os.close(pidfd)
        rc = res.si_status if res.si_code == os.CLD_EXITED else -res.si_status
        spawn = child.spawn
        failed = rc != 0 or child.timed_out or child.stopped
        if child.timed_out or child.stopped:
            self._kill_strays(spawn)
        if not failed and spawn.note is not None:
            job_id, session_id, attempt = spawn.note
            wd.note_success(spawn.workdir, job_id, session_id, attempt, child.started, ended)
            # a Python task's result is in its workdir, not in a line: its note alone speaks for it
            if self.journal is not None and not spawn.python:
                self._journal_end(spawn.note, child.started, ended)
        self.out.ended.append(
            Ended(
                spawn.key,
                rc,
                child.started,
                ended,
                child.timed_out,
                child.stopped,
                wd.tail(spawn.out_path) if failed else "",
                wd.read_result(spawn.workdir) if spawn.python else {},
            )
        )
        self._follow(spawn.key)

    def _kill_strays(self, spawn: Spawn) -> None:
        """What a stopped task left outside its process group (runner/launcher/leftovers.py)."""
        mark = self.base_env.get(leftovers.ENV)  # what the task's processes carry
        job_id = spawn.env.get(leftovers.JOB_ENV)
        if mark and job_id and job_id.isdigit():
            leftovers.kill(mark, int(job_id), timeout=KILL_GRACE_SEC)

    def _receive(self) -> None:
        msgs, closed = self.frames.receive(self.sock)
        for msg in msgs:
            self._handle(msg)
        if closed:  # the coordinator is gone: stop the tasks, nobody will report them
            self.stopping = True
            self.closed = True

    def _handle(self, msg: Any) -> None:
        if msg[0] == "start":
            self.asked = False
            for spawn in msg[1]:
                self.enqueue(spawn)
        elif msg[0] == "term":
            for key in msg[1]:
                child = self.by_key.get(key)
                if child is not None:
                    self.terminate(child)
        elif msg[0] == "stop":
            self.stopping = True

    def _send(self) -> None:
        # what a batch reports is in the journal first (ends noted; starts already were),
        # and so is what nobody will report (the coordinator is gone: its successor reads it)
        self._write_journal()
        out = self.out
        if not (out.started or out.ended or out.errors) or self.closed:
            return
        if not (self.urgent or self.stopping):
            now = time.time()
            if self.flush_at is None:
                self.flush_at = now + FLUSH_SEC
            if now < self.flush_at:
                return
        self.out = Batch([], [], [])
        self.urgent = False
        self.flush_at = None
        try:
            # blocking: the coordinator reads whenever it can, and never blocks writing to us
            self.sock.sendall(frame(out))
        except OSError:  # the coordinator is gone
            self.closed = True
            self.stopping = True

    def run(self) -> None:
        while True:
            # what happened since the last wake-up (or before the loop) goes out first
            self._send()
            if self.stopping:
                for child in list(self.children.values()):
                    self.terminate(child)
                if not self.children:
                    return
            timeout = self._timers()
            if self.flush_at is not None:
                due = max(0.0, self.flush_at - time.time())
                timeout = due if timeout is None else min(timeout, due)
            for fd, _ in self.ep.poll(-1 if timeout is None else timeout):
                if fd == self.sig_r:
                    with contextlib.suppress(BlockingIOError):
                        while os.read(self.sig_r, 512):
                            pass
                elif fd == self.sock.fileno():
                    self._receive()
                else:
                    self._reap(fd)


class SlowedSpawner(Spawner):
    """A spawner that waits ``delay`` seconds before each start (``TOLU_TEST_TASK_DELAY``): a
    launcher made slower on purpose, which the history gate must catch."""

    delay = 0.0

    def start(self, spawn: Spawn) -> None:
        time.sleep(self.delay)
        super().start(spawn)


def spawner_class(environ: Mapping[str, str] | None = None) -> type[Spawner]:
    """Spawner, or SlowedSpawner when the test switch is set to a positive number of seconds."""
    text = (os.environ if environ is None else environ).get(TEST_TASK_DELAY_ENV, "")
    if not text:
        return Spawner
    try:
        delay = float(text)
    except ValueError:
        raise SystemExit(f"{TEST_TASK_DELAY_ENV}={text!r}: expected seconds (a test switch)") from None
    if delay <= 0:
        return Spawner
    return type("SlowedSpawner", (SlowedSpawner,), {"delay": delay})


def main() -> None:
    announce(Role.STARTER)
    fd = int(sys.argv[1])
    parent = int(sys.argv[2])
    # SIGTERM when the coordinator dies (even by SIGKILL): the loop then stops every task
    die_with_parent(parent)
    sock = socket.socket(fileno=fd)
    os.set_inheritable(fd, False)
    frames = Frames()
    msgs: list[Any] = []
    while not msgs:
        data = sock.recv(READ_SIZE)
        if not data:
            return
        msgs = frames.feed(data)
    # the first message is the base environment; starts may have come with it
    spawner = spawner_class()(
        sock,
        msgs[0],
        frames,
        journal=sys.argv[3] if len(sys.argv) > 3 else None,
        journal_every_start=sys.argv[4:5] == [EVERY_START],
    )
    # ready: the coordinator waits for this before it takes jobs (SpawnerPool.wait_ready)
    sock.sendall(frame(Batch([], [], [])))
    for msg in msgs[1:]:
        spawner._handle(msg)
    spawner.run()
    sock.close()


if __name__ == "__main__":
    # run the module's own copy, so that what we pickle names runner.launcher.spawner, not __main__
    from runner.launcher.spawner import main as spawner_main

    spawner_main()
