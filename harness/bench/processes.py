"""The tolu processes of a run: found under their roots, classified by role, their CPU and memory sampled.

Roots are the processes a benchmark started (the server, each launcher). Every
``interval`` seconds a thread walks each root's process tree through
``/proc/PID/task/*/children`` and records for each process:

- its **role**: what the process announced (``runner.roles``: its kernel name, e.g.
  ``tolu-coord``); else a guess from its command line (``python -m runner.server`` is a
  server); else, for a forked or ``multiprocessing`` child of a tolu process, its
  parent's role. A process that is not tolu's but has tolu processes below it
  (``mpiexec`` and its proxy starting serial-mode ranks) is the ``runtime``; anything
  else below a tolu process is a **task** and is left out of every figure;
- its **CPU time**: the process-wide CPU clock of the pid (``clock_gettime`` on
  ``CPUCLOCK_SCHED``: every thread, nanoseconds, never its children), so the tasks a
  process starts do not count against it, and a thread that ended still counts;
- its **memory**: resident (RSS, from ``/proc/PID/stat``) and proportional (PSS, from
  ``smaps_rollup``: forked workers share pages, which RSS counts in each of them).

CPU in a window is read off each process's samples by linear interpolation (from 0
at the process's start), so the run phase, known only once the Events are read, can
be cut out after the fact. Between two walks the thread reads the CPU clocks of the
tolu processes it knows every ``clock_interval`` seconds (one system call each): a
run phase of a second is cut to within 20 ms, where walks 0.2 s apart would blur
each end by a fifth of it (a launcher's start-up just before its first job, its
shutdown just after its last). Linux only: elsewhere nothing is found and the figures
are missing.
"""

from __future__ import annotations

import bisect
import contextlib
import os
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from harness.bench.schema import ProcessUsage
from runner.roles import Role

#: roles of processes that are tolu's own but not announced ones; "runtime" is the MPI
#: runtime that starts tolu processes, "other" a tolu module with no known role.
RUNTIME = "runtime"
OTHER = "other"
#: every role a figure can name, in the order reports list them.
ROLES: tuple[str, ...] = (*(r.value for r in Role), RUNTIME, OTHER)

#: command-line modules of tolu processes that do not announce a role (another tolu
#: version, a process started some other way): the best guess at what they do.
MODULE_ROLES: dict[str, str] = {
    "runner.server": Role.SERVER.value,
    "harness.bench.counted_server": Role.SERVER.value,
    "runner.site.agent": Role.AGENT.value,
    # one process that fetches, starts and reports (MPI mode), or one rank that does it all
    "runner.launcher.serial_mode": Role.LAUNCHER.value,
    "runner.cli.main": Role.LAUNCHER.value,
}
#: tolu modules that run a job: tasks, not tolu's overhead.
TASK_MODULES = frozenset({"runner.launcher.pyrunner"})
#: how deep the walk goes below a tolu process through processes that are not tolu's:
#: deep enough for ``mpiexec`` -> proxy -> rank, shallow enough to skip a task's own tree.
FOREIGN_DEPTH = 3
#: a fork of a tolu process seen running its parent's command for this long is a worker
#: (and counts); until then it may be a task between fork and exec (and does not)
FORK_SETTLE_S = 1.0
#: PSS is read at every this many samples (RSS at every one)
PSS_EVERY = 5
#: the thread walks down to every task at every this many samples
FULL_EVERY = 5
FORK_WORK_S = 0.001

_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def _boot_time() -> float:
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/stat").read_text().splitlines():
            if line.startswith("btime "):
                return float(line.split()[1])
    return 0.0


_BOOT = _boot_time()


# ---------------------------------------------------------------- reading /proc


@dataclass(frozen=True)
class Stat:
    comm: str
    ppid: int
    start_ticks: int
    rss_bytes: int

    @property
    def started(self) -> float:
        """Start time, seconds since the epoch (10 ms resolution)."""
        return _BOOT + self.start_ticks / _TICKS


def read_stat(pid: int) -> Stat | None:
    """``/proc/PID/stat``: name, parent, start time and resident size; None once it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_bytes().decode("utf-8", "replace")
    except OSError:
        return None
    # the name sits in parentheses and may itself hold spaces or parentheses
    head, _, rest = raw.rpartition(")")
    fields = rest.split()
    try:
        return Stat(
            comm=head.partition("(")[2],
            ppid=int(fields[1]),
            start_ticks=int(fields[19]),
            rss_bytes=int(fields[21]) * _PAGE,
        )
    except (IndexError, ValueError):
        return None


def children(pid: int) -> list[int]:
    """Children of every thread of ``pid`` (a child belongs to the thread that forked it)."""
    out: list[int] = []
    try:
        threads = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in threads:
        try:
            out.extend(int(x) for x in Path(f"/proc/{pid}/task/{tid}/children").read_text().split())
        except (OSError, ValueError):
            continue
    return out


def cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode("utf-8", "replace") for part in raw.split(b"\0") if part]


def cpu_seconds(pid: int) -> float | None:
    """CPU time of process ``pid`` so far (all its threads, not its children); None once it is gone.

    The process's CPU clock (``clock_getcpuclockid``: ``(~pid << 3) | CPUCLOCK_SCHED``) is
    the scheduler's own count in nanoseconds; ``/proc/PID/stat`` would round to 10 ms.
    """
    try:
        return time.clock_gettime(((~pid) << 3) | 2)
    except (OSError, OverflowError):
        return None


def pss_bytes(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def python_module(argv: list[str]) -> str | None:
    """The module a Python command line runs (``python -P -m runner.server ...``; the ``tolu`` script)."""
    if not argv or not Path(argv[0]).name.startswith("python"):
        return None
    for i, arg in enumerate(argv[1:], start=1):
        if arg == "-m" and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith("-m") and len(arg) > 2:
            return arg[2:]
        if arg == "-c":
            return None
        if not arg.startswith("-"):
            # a script: the ``tolu`` console script is runner.cli.main
            return "runner.cli.main" if Path(arg).name == "tolu" else None
    return None


def _is_mp_child(argv: list[str]) -> bool:
    """A ``multiprocessing`` spawn or forkserver child (``python -c 'from multiprocessing...'``)."""
    return any("multiprocessing" in a for a in argv[1:3]) or "--multiprocessing-fork" in argv


# ---------------------------------------------------------------- one process


@dataclass
class Proc:
    pid: int
    start_ticks: int
    root: str
    parent: tuple[int, int] | None
    argv: list[str]
    started: float
    comm: str = ""
    #: a Role value, RUNTIME or OTHER for tolu's processes; "" for one that is not tolu's
    role: str = ""
    #: how the role was known: "announced", "command line", "parent"
    source: str = ""
    #: below a tolu process through this many processes that are not tolu's
    foreign_depth: int = 0
    times: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    #: a fork of its tolu parent that has not exec'd (a worker, or a task about to exec)
    forked: bool = False
    rss_bytes: int = 0
    peak_rss_bytes: int = 0
    pss_bytes: int | None = None

    @property
    def key(self) -> tuple[int, int]:
        return (self.pid, self.start_ticks)

    @property
    def tolu(self) -> bool:
        return bool(self.role) and self.role != RUNTIME

    def settled(self) -> bool:
        """Counts in the figures: not a fork that may be a task between fork and exec.

        A fork of a tolu process that has not announced a role and still runs its
        parent's command is a worker only once it has been seen so, unchanged, for
        FORK_SETTLE_S and has used FORK_WORK_S of CPU: on a busy machine a task can wait
        a while between fork and exec (running a ``preexec_fn`` even uses some CPU), but
        not for a second of samples.
        """
        if not self.forked or self.source == "announced":
            return True
        seen_for = (self.times[-1] - self.times[0]) if self.times else 0.0
        return seen_for >= FORK_SETTLE_S and bool(self.cpu) and self.cpu[-1] >= FORK_WORK_S

    def read_clock(self) -> None:
        """One sample of the process's CPU clock, now (none once it is gone)."""
        now = time.time()
        cpu = cpu_seconds(self.pid)
        # a clock that went back is another process's under a reused pid: not this one's
        if cpu is not None and (not self.cpu or cpu >= self.cpu[-1]):
            self.times.append(now)
            self.cpu.append(cpu)

    def cpu_at(self, t: float) -> float:
        """CPU seconds used by time ``t``, interpolated between samples (0 at the start)."""
        if t <= self.started:
            return 0.0
        i = bisect.bisect_left(self.times, t)
        if i == len(self.times):
            return self.cpu[-1] if self.cpu else 0.0
        t0, c0 = (self.times[i - 1], self.cpu[i - 1]) if i > 0 else (self.started, 0.0)
        span = self.times[i] - t0
        frac = (t - t0) / span if span > 0 else 1.0
        return c0 + frac * (self.cpu[i] - c0)

    def command(self, width: int = 120) -> str:
        text = " ".join(self.argv) or f"[{self.comm}]"
        return text if len(text) <= width else text[: width - 3] + "..."


# ---------------------------------------------------------------- the watch


@dataclass(frozen=True)
class RoleUsage:
    role: str
    cpu_s: float
    processes: int


@dataclass(frozen=True)
class TreeUsage:
    """The processes of one root together (every role)."""

    cpu_s: float
    processes: int


class ProcessWatch:
    """Samples the process trees of named roots every ``interval`` seconds on a thread."""

    def __init__(self, *, interval: float = 0.2, clock_interval: float = 0.02) -> None:
        self.interval = interval
        self.clock_interval = min(clock_interval, interval)
        #: the tolu processes whose clocks are read between walks (as of the last walk)
        self._clocked: list[Proc] = []
        self.roots: dict[str, int] = {}
        self.procs: dict[tuple[int, int], Proc] = {}
        #: per root: the largest sum over its tolu and runtime processes at one sample
        self.peak_rss: dict[str, int] = {}
        self.peak_pss: dict[str, int] = {}
        self.available = Path("/proc/self/task").is_dir()
        self._samples = 0
        #: pids of the tolu and runtime processes found so far (what a quick look reads)
        self._tracked: set[int] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------ control

    def watch(self, name: str, pid: int | None) -> None:
        """Follow ``pid``'s tree as ``name`` (``server``, ``launcher-0``...) from now on."""
        if pid is None:
            return
        with self._lock:
            self.roots[name] = pid
        self.sample()

    def forget(self, name: str) -> None:
        """Stop following a root (e.g. before it is killed on purpose); its samples stay."""
        with self._lock:
            self.roots.pop(name, None)

    def start(self) -> ProcessWatch:
        if self._thread is None and self.available:
            self._stop.clear()
            self._thread = threading.Thread(target=self._loop, name="bench-processes", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        self.sample()

    # ------------------------------------------------------------ sampling

    def sample(self, *, full: bool = True) -> None:
        """One look at every root's tree now.

        A full look walks down to every task; between full looks (``full=False``, what
        the thread does FULL_EVERY - 1 times out of FULL_EVERY) only the processes
        already known to be tolu's or the runtime are read, so that hundreds of tasks
        do not make the watch itself a load on the machine it measures. New tolu
        processes are found at the next full look (their CPU counts from their start).
        """
        if not self.available:
            return
        with self._lock:
            self._samples += 1
            tracked: set[int] = set()
            for name, pid in list(self.roots.items()):
                seen = self._walk(name, pid, only=None if full else self._tracked)
                self._mark_runtime(seen)
                tracked.update(p.pid for p in seen if p.role)
                counted = [p for p in seen if p.role and p.settled()]
                rss = sum(p.rss_bytes for p in counted)
                pss = [p.pss_bytes for p in counted]
                self.peak_rss[name] = max(self.peak_rss.get(name, 0), rss)
                if pss and all(v is not None for v in pss):
                    total = sum(v for v in pss if v is not None)
                    self.peak_pss[name] = max(self.peak_pss.get(name, 0), total)
            self._tracked = tracked if full else self._tracked | tracked
            self._clocked = [p for p in self.procs.values() if p.role and p.pid in self._tracked]

    def read_clocks(self) -> None:
        """The CPU clock of every tolu process found so far, and nothing else."""
        with self._lock:
            for proc in self._clocked:
                proc.read_clock()

    def _loop(self) -> None:
        next_walk = time.monotonic() + self.interval
        while not self._stop.wait(self.clock_interval):
            if time.monotonic() >= next_walk:
                self.sample(full=self._samples % FULL_EVERY == 0)
                next_walk = time.monotonic() + self.interval  # a slow walk is not caught up on
            else:
                self.read_clocks()

    def _walk(self, root: str, pid: int, *, only: set[int] | None) -> list[Proc]:
        """The tree below ``pid``; with ``only``, just the children whose pids are in it."""
        seen: list[Proc] = []
        stack: list[tuple[int, Proc | None]] = [(pid, None)]
        while stack:
            child, parent = stack.pop()
            st = read_stat(child)
            if st is None:
                continue
            proc = self.procs.get((child, st.start_ticks))
            if proc is None:
                proc = self._new(root, child, st, parent)
                self.procs[proc.key] = proc
            self._update(proc, st, parent)
            seen.append(proc)
            if proc.tolu or proc.foreign_depth < FOREIGN_DEPTH:
                below = children(child)
                stack.extend((c, proc) for c in below if only is None or c in only)
        return seen

    def _new(self, root: str, pid: int, st: Stat, parent: Proc | None) -> Proc:
        proc = Proc(
            pid=pid,
            start_ticks=st.start_ticks,
            root=root,
            parent=parent.key if parent else None,
            argv=cmdline(pid),
            started=st.started,
        )
        proc.role, proc.source = self._guess(proc, parent)
        return proc

    def _update(self, proc: Proc, st: Stat, parent: Proc | None) -> None:
        if proc.forked:
            # a fork until now: it may have exec'd a task since (its name or command changed)
            argv = cmdline(proc.pid)
            if argv != proc.argv or st.comm != proc.comm:
                proc.argv = argv
                proc.role, proc.source = self._guess(proc, parent)
        announced = Role.from_comm(st.comm)
        # a fork carries its parent's name until it announces its own or execs: the
        # parent's name on a child is not the child's announcement, whatever its command
        # line says (a task between fork and exec reads as an empty one, or already as
        # the task's while its name still reads as the starter's)
        inherited = parent is not None and parent.comm == st.comm
        if announced is not None and not inherited:
            proc.role, proc.source = announced.value, "announced"
        proc.comm = st.comm
        proc.foreign_depth = 0 if proc.tolu else (parent.foreign_depth + 1 if parent else 1)
        if proc.role:
            proc.read_clock()
            proc.rss_bytes = st.rss_bytes
            if proc.pss_bytes is None or self._samples % PSS_EVERY == 0:
                # smaps_rollup walks the page tables: a little costly, and PSS is context
                proc.pss_bytes = pss_bytes(proc.pid)
            if proc.settled():
                proc.peak_rss_bytes = max(proc.peak_rss_bytes, st.rss_bytes)

    @staticmethod
    def _guess(proc: Proc, parent: Proc | None) -> tuple[str, str]:
        """The role of a process that has not announced one, from its parent or its command line."""
        proc.forked = parent is not None and parent.tolu and proc.argv == parent.argv
        if parent is not None and parent.tolu and (proc.forked or _is_mp_child(proc.argv)):
            return parent.role, "parent"
        module = python_module(proc.argv)
        if module in TASK_MODULES:
            return "", ""
        if module is not None and module in MODULE_ROLES:
            return MODULE_ROLES[module], "command line"
        if module is not None and module.split(".")[0] in ("runner", "harness"):
            return OTHER, "command line"
        return "", ""

    def _mark_runtime(self, seen: Iterable[Proc]) -> None:
        """A process that is not tolu's, with a tolu process below it, is the runtime (sticky)."""
        by_key = {p.key: p for p in seen}
        for proc in seen:
            if not proc.tolu:
                continue
            up = by_key.get(proc.parent) if proc.parent else None
            while up is not None and not up.tolu:
                up.role, up.source = RUNTIME, "children"
                up = by_key.get(up.parent) if up.parent else None

    # ------------------------------------------------------------ results

    def tolu_processes(self) -> list[Proc]:
        """Every tolu or runtime process seen, roots first, then by start time."""
        with self._lock:
            procs = [p for p in self.procs.values() if p.role and p.settled()]
        return sorted(procs, key=lambda p: (p.root, p.started, p.pid))

    def usage(self, start: float, end: float, *, root: str | None = None) -> dict[str, RoleUsage]:
        """CPU seconds per role between ``start`` and ``end`` (epoch seconds), of all roots or ``root``'s."""
        totals: dict[str, list[float]] = {}
        for proc in self.tolu_processes():
            if root is not None and proc.root != root:
                continue
            used = proc.cpu_at(end) - proc.cpu_at(start)
            alive = proc.started < end and (not proc.times or proc.times[-1] > start)
            if not alive:
                continue
            entry = totals.setdefault(proc.role, [0.0, 0])
            entry[0] += max(0.0, used)
            entry[1] += 1
        return {role: RoleUsage(role, cpu, int(n)) for role, (cpu, n) in totals.items()}

    def tree_usage(self, root: str, start: float, end: float) -> TreeUsage | None:
        """CPU seconds between ``start`` and ``end`` of every tolu process under ``root``
        together, whatever its role: a server's supervisor and all its workers; None when
        none was seen."""
        used = list(self.usage(start, end, root=root).values())
        if not used:
            return None
        return TreeUsage(sum(u.cpu_s for u in used), sum(u.processes for u in used))

    def peak_mb(self, prefix: str, *, pss: bool = False) -> float | None:
        """The largest peak among the roots named ``prefix`` or ``prefix-N``, in MiB."""
        peaks = self.peak_pss if pss else self.peak_rss
        values = [v for name, v in peaks.items() if name == prefix or name.startswith(prefix + "-")]
        return max(values) / 2**20 if values else None

    def largest_peak_mb(self, root: str) -> float | None:
        """The highest peak resident memory of one process under ``root``, in MiB."""
        peaks = [p.peak_rss_bytes for p in self.tolu_processes() if p.root == root]
        return max(peaks) / 2**20 if peaks else None

    def rows(self, start: float, end: float) -> list[ProcessUsage]:
        """Each tolu process for the report: its role, CPU between ``start`` and ``end`` and in all."""
        return [
            ProcessUsage(
                root=p.root,
                pid=p.pid,
                role=p.role,
                source=p.source,
                command=p.command(),
                cpu_s=max(0.0, p.cpu_at(end) - p.cpu_at(start)),
                cpu_total_s=p.cpu[-1] if p.cpu else 0.0,
                peak_rss_mb=p.peak_rss_bytes / 2**20,
            )
            for p in self.tolu_processes()
        ]
