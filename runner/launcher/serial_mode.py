"""Serial mode: many small single-node tasks, one mpi4py rank per node, started once.

``mpiexec -n RANKS python -P -m runner.launcher.serial_mode OPTIONS_JSON`` on several
nodes; on one node, ``python -P -m runner.launcher.serial_mode OPTIONS_JSON no-mpi``:
one rank, no MPI (nothing to talk to), so a node needs no MPI library. Rank 0
talks to the server (session, acquire, batched reports) and hands tasks to the
worker ranks over MPI, keeping each one ``slots x (1 + prefetch)`` tasks deep so a
worker never waits for the server. With one rank, rank 0 is also the worker.

A worker runs up to its node's slots at once (node manager rules: packing count,
CPUs, GPUs), each task a plain subprocess (no MPI_Init per task), notices exits
through pidfds at once, and reports starts and ends in batches.

No blocking MPI call sits on a hot path: MPICH's blocking receive spins a core,
which on a small node is a core taken from the tasks. Ranks poll with ``Iprobe``
between waits on their children.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import socket
import sys
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from runner import heap
from runner.launcher import journal as journals
from runner.launcher.context import Context
from runner.launcher.deathsig import die_with_parent
from runner.launcher.engine import Engine, Start, chain_depth, request_of, shape_of
from runner.launcher.fetcher import IDLE_ACQUIRE_SEC, Fetcher
from runner.launcher.logfile import setup_logging
from runner.launcher.options import LauncherOptions
from runner.launcher.outcome import Outcome, exit_outcome
from runner.launcher.pacing import RateMeter, ahead
from runner.launcher.spawners import SpawnerPool
from runner.launcher.tasks import Task
from runner.launcher.workdir import OUTPUT_FILE
from runner.models import MAX_BULK, AcquireSpec
from runner.platform import nodes
from runner.platform.gpus import GpuEnv
from runner.platform.node_manager import Assignment, NodeManager
from runner.roles import Role, announce

log = logging.getLogger("runner.launcher.serial")

TAG_TASKS = 1
TAG_REPORT = 2
TAG_STOP = 3
TAG_SETUP = 4
#: the argument after the options that runs one rank without MPI (one node)
NO_MPI = "no-mpi"

#: a worker that has finished tasks reports at least this often (seconds).
WORKER_REPORT_SEC = 0.05
#: how long a waiting rank sleeps between MPI polls.
POLL_SEC = 0.002
#: how long a stopping worker rank waits for rank 0 to take its last report; rank 0 takes
#: it at once when it stops in order, so past this it is gone (killed) and the worker exits.
FINAL_REPORT_SEC = 60.0
#: sys.setswitchinterval for the ranks (Python's default is 5 ms).
SWITCH_INTERVAL_SEC = 0.0005
#: until its first tasks finish, rank 0 holds at least this many tasks per worker slot beyond
#: the workers' queues, so tiny tasks never wait for an acquire round trip (then a second's
#: worth at their finishing rate; unstarted ones go back to the server when the launcher stops).
MIN_AHEAD_PER_SLOT = 16


@dataclass
class Report:
    started: list[tuple[int, float]] = field(default_factory=list)
    done: list[Outcome] = field(default_factory=list)
    #: tasks the worker gives back unstarted (when stopping).
    returned: list[int] = field(default_factory=list)
    #: tasks that can never run on this node, with the reason.
    failed: list[tuple[int, str]] = field(default_factory=list)
    final: bool = False

    def __bool__(self) -> bool:
        return bool(self.started or self.done or self.returned or self.failed or self.final)


#: variables through which MPI's process manager talks to a rank; a task started by
#: a rank must not inherit them, or an MPI program in it would join the launcher's job.
MPI_ENV_PREFIXES = ("PMI_", "PMIX_", "MPIR_", "HYDRA_", "HYDI_", "MPI_LOCAL", "OMPI_", "I_MPI_HYDRA")


def task_base_env(env: Mapping[str, str], hostname: str) -> dict[str, str]:
    out = {k: v for k, v in env.items() if not k.startswith(MPI_ENV_PREFIXES)}
    out["TOLU_NODE"] = hostname
    return out


def spawner_log(site_dir: Path) -> Path:
    """Where this rank's spawners write should one fail: SITE/log/spawners-<rank pid>.log."""
    return site_dir / "log" / f"spawners-{os.getpid()}.log"


def spawner_count(node: nodes.Node) -> int:
    """One spawner per core this rank may use, and no more than the node's slots."""
    return max(1, min(max(1, node.cpus), nodes.detect_cpus()))


class Worker:
    """Runs tasks on one node: the node manager places them, the spawners start and wait."""

    def __init__(
        self,
        node: nodes.Node,
        gpu_env: GpuEnv | None = None,
        *,
        depth: int = 2,
        log_path: Path | None = None,
        journal_path: Path | None = None,
    ) -> None:
        self.node = node
        self.nm = NodeManager([node], gpu_env)
        # the spawners journal every start: rank 0 hears of one only in their next batch,
        # and a launcher killed before then must still leave its RUNNING (journal.read)
        self.pool = SpawnerPool(
            spawner_count(node),
            task_base_env(os.environ, node.hostname),
            log_path=log_path,
            journal_path=journal_path,
            journal_every_start=True,
        )
        self.engine = Engine(self.nm, self.pool, self._build, depth=depth)
        self.queue: deque[Task] = deque()
        self.report = Report()
        self.last_report = time.time()
        self.stopping = False
        self.prefetch = depth
        #: tasks ended per second here (how deep to queue behind running ones)
        self.finished = RateMeter()
        #: never_fits by shape: the same for every task of a shape
        self._never: dict[tuple[int, int, int, int, int], str | None] = {}

    def start(self) -> Worker:
        self.pool.start()
        return self

    @property
    def slots(self) -> int:
        return max(1, self.node.cpus)

    @property
    def wake_fd(self) -> int:
        return self.pool.wake_fd

    def wake(self) -> None:
        self.pool.wake()

    @staticmethod
    def _build(task: Task, a: Assignment) -> Start:
        return Start(
            argv=task.argv,
            workdir=task.workdir,
            out_path=task.workdir + "/" + OUTPUT_FILE,
            env={**task.env, **a.env()},
            wall_time_sec=task.wall_time_sec,
            note=(task.job_id, task.session_id, task.attempt),
            python=task.python,
        )

    def add(self, tasks: list[Task]) -> None:
        never = self._never
        for t in tasks:
            shape = shape_of(t)
            if shape not in never:
                never[shape] = self.nm.never_fits(request_of(t))
            reason = never[shape]
            if reason is not None:
                self.report.failed.append((t.job_id, f"does not fit the node: {reason}"))
            else:
                self.queue.append(t)
        if self.queue:
            self.finished.begin()
        self._start_queued()

    def _start_queued(self) -> None:
        """Start (or queue behind a running task of its shape) every task that can go, in
        order; one that cannot waits without holding up the ones behind it (a job waiting
        for a GPU does not keep CPU jobs out)."""
        if not self.queue or self.stopping:
            return
        still: deque[Task] = deque()
        #: shapes that found no free resources in this pass, and those that could not
        #: be queued behind a running task either: the same shape will not fare better
        full: set[tuple[int, int, int, int, int]] = set()
        no_room: set[tuple[int, int, int, int, int]] = set()
        place = self.engine.place
        for task in self.queue:
            shape = shape_of(task)
            if shape in no_room:
                still.append(task)
                continue
            placed = place(task, try_now=shape not in full)
            if placed is True:
                full.add(shape)
            elif not placed:
                full.add(shape)
                no_room.add(shape)
                still.append(task)
        self.queue = still

    def step(self, timeout: float) -> None:
        """Wait up to ``timeout`` for starts and exits, record them, start what now fits."""
        out = self.engine.handle(self.pool.wait(timeout))
        report = self.report
        report.started += out.started
        if out.ended:
            self.finished.add(len(out.ended))
            self.engine.pace(self.finished.rate() / self.slots, self.prefetch)
        # refill the freed slots first, the bookkeeping of the ended tasks after
        self._start_queued()
        if not self.queue and not len(self.engine):
            self.finished.idle()
        self.pool.flush()
        for task, message in out.failed:
            now = time.time()
            report.started.append((task.job_id, now))
            report.done.append(Outcome(task.job_id, None, now, now, error=message))
        for task in out.cancelled:
            report.returned.append(task.job_id)
        for task, ex in out.ended:
            report.done.append(exit_outcome(ex, task))

    def take_report(self, force: bool = False) -> Report | None:
        """The pending report when it is due: soon after an exit, at once when starving."""
        r = self.report
        if not r:
            return None
        low = len(self.queue) + len(self.engine) <= 2 * self.slots
        due = force or r.final or bool(r.returned or r.failed)
        late = time.time() - self.last_report >= WORKER_REPORT_SEC
        # ends soon (they free a slot); starts alone within WORKER_REPORT_SEC
        due = due or (bool(r.done) and low) or late
        if not due:
            return None
        self.report = Report()
        self.last_report = time.time()
        return r

    def stop(self) -> Report:
        """Stop every running task (they end as RUN_TIMEOUT), give back the queued ones."""
        self.stopping = True
        self.report.returned.extend(t.job_id for t in self.queue)
        self.queue.clear()
        self.engine.stop()
        while len(self.engine):
            self.step(1.0)
        self.pool.close()
        self.report.final = True
        r, self.report = self.report, Report()
        return r


class Master:
    """Rank 0: server session, acquiring (in the fetcher thread), handing out, reporting."""

    def __init__(self, ctx: Context, slots: dict[int, int], fetcher: Fetcher) -> None:
        self.ctx = ctx
        #: rank -> tasks it runs at once, and how many it should hold (running + queued)
        self.slots = slots
        self.prefetch = ctx.settings.launcher.prefetch
        self.targets = {r: n * (1 + self.prefetch) for r, n in slots.items()}
        self.outstanding: dict[int, set[int]] = {r: set() for r in slots}
        self.ready: deque[Task] = deque()
        self.fetcher = fetcher
        self.last_busy = time.time()
        self.finished = RateMeter()

    def depth(self) -> int:
        """Tasks each worker slot should have queued behind its running one (engine.chain_depth)."""
        return chain_depth(self.finished.rate() / sum(self.slots.values()), self.prefetch)

    def _retarget(self) -> None:
        depth = self.depth()
        self.targets = {r: n * (1 + depth) for r, n in self.slots.items()}

    def deficit(self) -> int:
        return sum(self.targets[r] - len(self.outstanding[r]) for r in self.targets)

    def busy(self) -> bool:
        # a request in flight does not count (one goes out every second while idle) unless it
        # is long on its way; a server that is away does: whether there is work is unknown
        return (
            bool(self.ready)
            or any(self.outstanding.values())
            or self.fetcher.last_count > 0
            or self.fetcher.unsure()
            or self.ctx.reporter.failing
        )

    def _want(self) -> tuple[int, int]:
        """How many more tasks to ask for, and the target they fill up to: the workers'
        depth, plus what they finish while acquires are on their way."""
        held = sum(len(o) for o in self.outstanding.values()) + len(self.ready)
        depth = sum(self.targets.values())
        rate = self.finished.rate()
        # a fixed floor only until tasks finish: then a second's worth at their rate. Held
        # beyond that, long tasks made a tail (8 launchers x 2 slots of 0.2 s tasks each
        # held 3 s of work at the end while others had none)
        floor = depth if rate > 0 else max(depth, MIN_AHEAD_PER_SLOT * sum(self.slots.values()))
        target = depth + int(ahead(rate, self.fetcher.latency, floor))
        return target - held, target

    def next_wakeup(self) -> float:
        """Seconds the loop may sleep when nothing else happens: until it may ask again
        when it wants to, else the idle period (exits and arrivals wake it anyway)."""
        want, target = self._want()
        if not self.fetcher.busy and want >= target / 2:
            return min(IDLE_ACQUIRE_SEC, max(0.0, self.fetcher.quiet_until - time.time()))
        return IDLE_ACQUIRE_SEC

    def maybe_acquire(self) -> None:
        self._retarget()
        self.ready.extend(self.fetcher.take())
        held = sum(len(o) for o in self.outstanding.values()) + len(self.ready)
        self.fetcher.holding(held, self.finished.rate())
        # ask for a full round ahead, so the workers never wait for the server
        want, target = self._want()
        if want < target / 2 or not self.fetcher.can_request():
            return
        self.fetcher.request(
            AcquireSpec(
                max_num_jobs=min(MAX_BULK, want),
                max_nodes_per_job=1,
                max_wall_time_min=self.ctx.acquire_wall_time(),
                serial_only=True,
                filter_tags=self.ctx.filter_tags,
            )
        )

    def hand_out(self) -> dict[int, list[Task]]:
        """Tasks for each rank: first a free slot everywhere, then the prefetch, one at a time
        round the ranks, so work spreads over the nodes instead of queueing on the first."""
        give: dict[int, list[Task]] = {r: [] for r in self.targets}
        for limit in (self.slots, self.targets):
            progress = True
            while self.ready and progress:
                progress = False
                for r in self.targets:
                    if self.ready and len(self.outstanding[r]) + len(give[r]) < limit[r]:
                        give[r].append(self.ready.popleft())
                        progress = True
        for r, tasks in give.items():
            if tasks:
                self.finished.begin()
            self.outstanding[r].update(t.job_id for t in tasks)
        return {r: tasks for r, tasks in give.items() if tasks}

    def on_report(self, rank: int, r: Report) -> None:
        # one batch for the sink (one journal write); returned ones never started: the
        # server releases them when the session ends
        self.ctx.sink.report(started=r.started, done=r.done, failed=r.failed, returned=r.returned)
        outstanding = self.outstanding[rank]
        for o in r.done:
            outstanding.discard(o.job_id)
        if r.done:
            self.finished.add(len(r.done))
        for job_id, _reason in r.failed:
            outstanding.discard(job_id)
        for job_id in r.returned:
            outstanding.discard(job_id)
        if not self.ready and not any(self.outstanding.values()):
            self.finished.idle()

    def should_stop(self) -> bool:
        ctx = self.ctx
        if ctx.stop_reason:
            return True
        if ctx.out_of_time():
            ctx.request_stop("wall time reached")
            return True
        if not self.ready and not any(self.outstanding.values()) and self.fetcher.stop_if_server_gone():
            return True
        if self.busy():
            self.last_busy = time.time()
        elif ctx.max_idle_sec is not None and time.time() - self.last_busy >= ctx.max_idle_sec:
            ctx.request_stop(f"idle for {ctx.max_idle_sec:g} s")
            return True
        return False


# ---------------------------------------------------------------- rank programs


def run_single(ctx: Context, node: nodes.Node, gpu_env: GpuEnv) -> None:
    """One rank: the master feeds its own worker directly, no messages."""
    depth = ctx.settings.launcher.prefetch
    worker = Worker(
        node, gpu_env, depth=depth, log_path=spawner_log(ctx.site_dir), journal_path=ctx.journal.path
    ).start()
    fetcher = Fetcher(ctx, on_ready=worker.wake)
    master = Master(ctx, {0: worker.slots}, fetcher)
    ctx.install_signals(worker.wake_fd)
    worker.pool.wait_ready()
    fetcher.start()
    try:
        while not master.should_stop():
            master.maybe_acquire()
            for tasks in master.hand_out().values():
                worker.add(tasks)
            # Sleep until a task exits (pidfd), jobs arrive from the fetcher, a signal
            # comes, or it is time to ask the server again.
            worker.step(master.next_wakeup())
            r = worker.take_report(force=True)
            if r:
                master.on_report(0, r)
        master.on_report(0, worker.stop())
    finally:
        fetcher.close()


def run_master(ctx: Context, comm: Any, worker_nodes: list[nodes.Node]) -> None:
    from mpi4py import MPI

    slots = {r: max(1, n.cpus) for r, n in enumerate(worker_nodes, start=1)}
    fetcher = Fetcher(ctx)
    master = Master(ctx, slots, fetcher)
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    ctx.install_signals(wake_w)
    fetcher.start()
    status = MPI.Status()
    while not master.should_stop():
        got = _drain_reports(comm, master, status)
        master.maybe_acquire()
        for rank, tasks in master.hand_out().items():
            comm.send(tasks, dest=rank, tag=TAG_TASKS)
            got = True
        if not got:
            time.sleep(POLL_SEC if any(master.outstanding.values()) or fetcher.busy else 0.02)
    fetcher.close()
    for rank in slots:
        comm.send(None, dest=rank, tag=TAG_STOP)
    finals = 0
    while finals < len(slots):
        if comm.Iprobe(source=MPI.ANY_SOURCE, tag=TAG_REPORT, status=status):
            r = comm.recv(source=status.Get_source(), tag=TAG_REPORT)
            master.on_report(status.Get_source(), r)
            finals += int(r.final)
        else:
            time.sleep(POLL_SEC)
    os.close(wake_r)
    os.close(wake_w)


def _drain_reports(comm: Any, master: Master, status: Any) -> bool:
    from mpi4py import MPI

    got = False
    while comm.Iprobe(source=MPI.ANY_SOURCE, tag=TAG_REPORT, status=status):
        source = status.Get_source()
        master.on_report(source, comm.recv(source=source, tag=TAG_REPORT))
        got = True
    return got


def run_worker(
    comm: Any, node: nodes.Node, gpu_env: GpuEnv, depth: int, site_dir: Path, journal_path: Path
) -> None:
    from mpi4py import MPI

    starts = journals.rank_starts(journal_path, comm.Get_rank())
    try:
        # rank 0 makes the journal's directory when it opens the journal, which may come
        # after this on a site's first launch: a spawner cannot note starts in a file
        # that is not there (spawner.py opens it without O_CREAT)
        starts.parent.mkdir(parents=True, exist_ok=True)
        os.close(os.open(starts, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600))
    except OSError as exc:  # the starts go unjournaled; rank 0's reports still carry them
        log.warning("cannot make the start journal %s: %s", starts, exc)
    worker = Worker(node, gpu_env, depth=depth, log_path=spawner_log(site_dir), journal_path=starts).start()
    worker.pool.wait_ready()
    stop = {"flag": False}

    def on_signal(signum: int, frame: object) -> None:
        stop["flag"] = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    signal.set_wakeup_fd(worker.wake_fd, warn_on_full_buffer=False)
    status = MPI.Status()
    while not stop["flag"]:
        while comm.Iprobe(source=0, tag=MPI.ANY_TAG, status=status):
            tag = status.Get_tag()
            msg = comm.recv(source=0, tag=tag)
            if tag == TAG_STOP:
                stop["flag"] = True
                break
            worker.add(msg)
        if stop["flag"]:
            break
        r = worker.take_report()
        if r:
            comm.send(r, dest=0, tag=TAG_REPORT)
        worker.step(POLL_SEC if not worker.queue else WORKER_REPORT_SEC)
    final = worker.stop()
    # not a blocking ssend: with rank 0 killed it never returns (MPICH spins in it at
    # most of a core), and mpiexec, waiting for this rank, never ends either
    sent = comm.issend(final, dest=0, tag=TAG_REPORT)
    deadline = time.monotonic() + FINAL_REPORT_SEC
    while not sent.Test():
        if time.monotonic() > deadline:
            log.warning("rank 0 did not take the last report in %g s: it is gone; leaving", FINAL_REPORT_SEC)
            os._exit(1)  # no MPI_Finalize: it would wait for rank 0 too
        time.sleep(POLL_SEC)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    raw = json.loads(argv[0])
    raw["site_dir"] = Path(raw["site_dir"])
    opts = LauncherOptions(**raw)
    # If mpiexec (or its proxy, or the launcher) is killed, take the tasks down instead of
    # orphaning them.
    die_with_parent()
    comm: Any = None
    if argv[1:2] == [NO_MPI]:  # one node, one rank: no MPI at all (serial_start.command)
        rank, size = 0, 1
    else:
        from mpi4py import MPI

        comm = MPI.COMM_WORLD
        rank, size = comm.Get_rank(), comm.Get_size()
    # rank 0 moves every job, a worker rank every job of its node; the spawners start them
    announce(Role.COORDINATOR)
    heap.settle()  # collector and malloc set for batches; before the fetcher and reporter threads
    # Threads hand the GIL over sooner: a spawner returning from fork/exec or the loop
    # woken by an exit should not wait out another thread's 5 ms JSON parsing slice.
    sys.setswitchinterval(SWITCH_INTERVAL_SEC)
    if rank == 0:
        note_rank0(opts)
        setup_logging(opts.site_dir)
        ctx = Context.load(opts)
        ls = ctx.settings.launcher
        found = nodes.discover(ls, hostfile=opts.hostfile)
        gpu_env = nodes.gpu_env(ls)
        # worker rank r runs on node r-1 (the CLI starts one extra rank on the first node)
        worker_nodes = found[:1] if size == 1 else [found[i % len(found)] for i in range(size - 1)]
        for r in range(1, size):
            setup = (worker_nodes[r - 1], gpu_env, ls.prefetch, ctx.site_dir, ctx.journal.path)
            comm.send(setup, dest=r, tag=TAG_SETUP)
        log.info(
            "serial mode: %d rank(s), workers on %s",
            size,
            ",".join(f"{n.hostname}({n.cpus} slots)" for n in worker_nodes),
        )
        try:
            ctx.open()
            if size == 1:
                run_single(ctx, worker_nodes[0], gpu_env)
            else:
                run_master(ctx, comm, worker_nodes)
        finally:
            log.info("launcher done (%s)", ctx.stop_reason or "finished")
            ctx.close()
        return ctx.exit_code
    node, gpu_env, depth, site_dir, journal_path = comm.recv(source=0, tag=TAG_SETUP)
    run_worker(comm, node, gpu_env, depth, site_dir, journal_path)
    return 0


def rank0_file(opts: LauncherOptions) -> Path | None:
    """Where serial mode's rank 0 says which process it is (``host pid``), beside the exit file."""
    return Path(opts.exit_file + ".rank0") if opts.exit_file else None


def note_rank0(opts: LauncherOptions) -> None:
    """Rank 0 (this process) tells the supervisor where to send a stop (``run``)."""
    path = rank0_file(opts)
    if path is not None:
        with contextlib.suppress(OSError):
            path.write_text(f"{socket.gethostname()} {os.getpid()}\n")


def rank0_pid(opts: LauncherOptions) -> int | None:
    """Rank 0's pid when it runs on this host and still is rank 0 (not a pid reused
    since it ended), else None."""
    path = rank0_file(opts)
    try:
        host, pid = path.read_text().split() if path is not None else ("", "")
        if host != socket.gethostname():
            return None
        comm = Path(f"/proc/{int(pid)}/comm").read_text().strip()
    except (OSError, ValueError):
        return None
    return int(pid) if comm == Role.COORDINATOR.comm else None


def options_json(opts: LauncherOptions) -> str:
    raw = asdict(opts)
    raw["site_dir"] = str(opts.site_dir)
    return json.dumps(raw)


if __name__ == "__main__":
    sys.exit(main())
