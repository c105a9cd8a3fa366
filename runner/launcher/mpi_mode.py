"""MPI mode: a coordinator on the head node, one start command (``mpiexec``) per job.

The loop acquires jobs that fit the free nodes, places them with the node manager
(runner/launcher/engine.py), builds each one's start command through the site's app
launcher with its hosts, and hands the starts to the head node's spawner processes
(runner/launcher/spawners.py), which start, wait and time out the commands. It
sleeps until a spawner reports, a signal arrives or it is time to acquire. What
happens to the jobs goes to the outcome sink (runner/launcher/sink.py), which journals
it and reports it in batches.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections import Counter, deque

from runner.launcher.context import Context
from runner.launcher.engine import (
    Engine,
    Shape,
    Start,
    node_equivalents,
    request_of,
    shape_equivalents,
    shape_of,
)
from runner.launcher.fetcher import IDLE_ACQUIRE_SEC, Fetcher
from runner.launcher.options import LauncherOptions
from runner.launcher.outcome import Outcome, exit_outcome
from runner.launcher.pacing import RateMeter, ahead
from runner.launcher.spawners import Exit, SpawnerPool
from runner.launcher.tasks import Task
from runner.launcher.workdir import OUTPUT_FILE
from runner.models import AcquireSpec
from runner.platform import app_launchers, nodes
from runner.platform.app_launchers import AppLauncher, LaunchSpec, UnsupportedJob
from runner.platform.gpus import GpuEnv
from runner.platform.node_manager import Assignment, NodeManager
from runner.roles import Role, announce

log = logging.getLogger("runner.launcher.mpi")

#: largest number of jobs asked for in one acquire.
ACQUIRE_BATCH = 1000


class MPIMode:
    def __init__(
        self, ctx: Context, node_list: list[nodes.Node], app_launcher: AppLauncher, gpu_env: GpuEnv
    ) -> None:
        self.ctx = ctx
        self.nodes = NodeManager(node_list, gpu_env)
        self.app_launcher = app_launcher
        slots = sum(max(1, n.cpus) for n in node_list)
        self.slots = slots
        #: jobs ended per second (how deep to queue behind running ones)
        self.ended = RateMeter()
        # one spawner per core of the head node (no more than there are slots)
        self.spawners = SpawnerPool(
            min(slots, nodes.detect_cpus()), os.environ,
            log_path=ctx.site_dir / "log" / f"spawners-{os.getpid()}.log",
            # a start the coordinator does not know of yet is noted there (same host)
            journal_path=ctx.journal.path,
        )
        self.engine = Engine(self.nodes, self.spawners, self._build, depth=ctx.settings.launcher.prefetch)
        self.fetcher = Fetcher(ctx, on_ready=self.spawners.wake)
        self.waiting: deque[Task] = deque()
        #: how many tasks of each shape wait: what they take and whether any of them can
        #: start are answered per shape, not per task (the backlog is a second's worth)
        self._waiting_shapes: Counter[Shape] = Counter()
        self.last_busy = time.time()
        #: node-equivalents held beyond what runs, so a finished job is replaced at
        #: once instead of after a round trip to the server.
        self.prefetch_nodes = len(node_list) * ctx.settings.launcher.prefetch
        #: node-equivalents freed per second by finished jobs
        self.freed = RateMeter()

    # ------------------------------------------------------------ the loop

    def run(self) -> int:
        """Run until idle, out of time or stopped; the exit code (Context.exit_code)."""
        # fetches, places and reports every job; the spawners start them
        announce(Role.COORDINATOR)
        # see serial_mode.SWITCH_INTERVAL_SEC: hand the GIL to a returning spawner sooner
        sys.setswitchinterval(0.0005)
        ctx = self.ctx
        self.spawners.start()
        ctx.install_signals(self.spawners.wake_fd)
        # spawners that cannot start end the launcher before it holds a session
        self.spawners.wait_ready()
        ctx.open()
        self.fetcher.start()
        log.info(
            "MPI mode on %d node(s) %s with %s; wall time %s min",
            len(self.nodes.nodes),
            ",".join(n.hostname for n in self.nodes.nodes[:8]),
            self.app_launcher.name,
            ctx.opts.wall_time_min,
        )
        try:
            while not ctx.stop_reason:
                if ctx.out_of_time():
                    ctx.request_stop("wall time reached")
                    break
                self._stop_revoked()
                self._take_fetched()
                self._start_waiting()
                self._maybe_acquire()
                if self._idle_too_long():
                    ctx.request_stop(f"idle for {ctx.max_idle_sec:g} s")
                    break
                if not len(self.engine) and not self.waiting and self.fetcher.stop_if_server_gone():
                    break
                self._handle(self._timeout())
        finally:
            self._shutdown()
        return ctx.exit_code

    def _timeout(self) -> float:
        now = time.time()
        t = IDLE_ACQUIRE_SEC
        room, extra = self._room()
        if not self.fetcher.busy and room > 1e-9 and room >= extra / 2:
            t = max(0.0, self.fetcher.quiet_until - now)
        if self.ctx.deadline is not None:
            t = min(t, max(0.0, self.ctx.deadline - now))
        if self.ctx.max_idle_sec is not None and not len(self.engine):
            t = min(t, max(0.0, self.last_busy + self.ctx.max_idle_sec - now))
        return t

    def _idle_too_long(self) -> bool:
        # a request in flight does not count (one goes out every second while idle) unless it
        # is long on its way; a server that is away does: whether there is work is unknown
        if (
            len(self.engine)
            or self.waiting
            or self.fetcher.last_count
            or self.fetcher.unsure()
            or self.ctx.reporter.failing
        ):
            self.last_busy = time.time()
            return False
        limit = self.ctx.max_idle_sec
        return limit is not None and time.time() - self.last_busy >= limit

    def _stop_revoked(self) -> None:
        # another launcher took these after this one's session was lost: stop our copy
        for job_id in self.ctx.sink.revoked():
            if job_id in self.engine.tasks:
                log.warning("job %d is run by another launcher now: stopping it here", job_id)
                self.spawners.terminate(job_id)

    # ------------------------------------------------------------ acquiring

    def _room(self) -> tuple[float, float]:
        """Node-equivalents the launcher may still take (free nodes plus the prefetch),
        and how many it holds beyond the free nodes (jobs waiting for a place)."""
        waiting = sum(n * shape_equivalents(s) for s, n in self._waiting_shapes.items()) + self.engine.backlog
        extra = ahead(self.freed.rate(), self.fetcher.latency, self.prefetch_nodes)
        return self.nodes.free_node_equivalents() + extra - waiting, extra

    def _maybe_acquire(self) -> None:
        self.fetcher.holding(len(self.engine) + len(self.waiting), self.ended.rate())
        room, extra = self._room()
        # ask when the local backlog is half used up, for a batch, not a job at a time
        if room <= 1e-9 or room < extra / 2 or not self.fetcher.can_request():
            return
        self.fetcher.request(
            AcquireSpec(
                max_num_jobs=ACQUIRE_BATCH,
                max_nodes_per_job=len(self.nodes.nodes),
                max_aggregate_nodes=room,
                max_wall_time_min=self.ctx.acquire_wall_time(),
                filter_tags=self.ctx.filter_tags,
            )
        )

    def _take_fetched(self) -> None:
        for task in self.fetcher.take():
            reason = self.nodes.never_fits(request_of(task))
            if reason is not None:
                self.ctx.fail(task.job_id, f"does not fit this allocation: {reason}")
            else:
                self.waiting.append(task)
                self._waiting_shapes[shape_of(task)] += 1

    def _gone(self, shape: Shape) -> None:
        """A task of ``shape`` left the waiting line (started, queued or failed)."""
        left = self._waiting_shapes[shape] - 1
        if left:
            self._waiting_shapes[shape] = left
        else:
            del self._waiting_shapes[shape]

    # ------------------------------------------------------------ starting

    def _start_waiting(self) -> None:
        # In order. A job that waits for whole nodes reserves them: jobs behind it
        # may still start, but only where they leave it enough idle nodes (and none is
        # queued behind a running job meanwhile), so it is not starved by a stream of
        # small ones.
        still: deque[Task] = deque()
        reserved = 0
        #: shapes that did not fit in this pass: the same shape will not fit either
        no_room: set[Shape] = set()
        present = set(self._waiting_shapes)
        started: list[tuple[int, float]] = []
        tasks = iter(self.waiting)
        for task in tasks:
            shape = shape_of(task)
            if shape in no_room:
                still.append(task)
                continue
            try:
                placed = self.engine.place(task, chain=not reserved, keep_idle=reserved)
            except UnsupportedJob as exc:
                self._gone(shape)
                self.ctx.fail(task.job_id, str(exc))
                continue
            if not placed:
                still.append(task)
                no_room.add(shape)
                if task.num_nodes > 1:
                    reserved = max(reserved, task.num_nodes)
                if no_room >= present:  # none of the rest can go either: they keep their places
                    still.extend(tasks)
                    break
                continue
            self._gone(shape)
            if isinstance(placed, Assignment):
                # journaled (and reported) before the spawner starts it: a launcher killed
                # a moment later still leaves the RUNNING of every real start. A task
                # queued behind another says RUNNING when its spawner starts it.
                started.append((task.job_id, time.time()))
                log.debug("job %d starting on %s", task.job_id, ",".join(placed.hosts))
        self.waiting = still
        if started:  # one journal write for the pass; the spawners hear of them after it
            self.ctx.sink.report(started=started)
        if len(self.engine):  # the rates count from when the work began (RateMeter.begin)
            self.freed.begin()
            self.ended.begin()

    def _build(self, task: Task, a: Assignment) -> Start:
        spec = LaunchSpec(
            argv=task.argv,
            hosts=a.hosts,
            ranks_per_node=task.ranks_per_node,
            threads_per_rank=task.threads_per_rank,
            gpus_per_rank=task.gpus_per_rank,
            env={**task.env, **a.env()},
        )
        return Start(
            argv=self.app_launcher.command(spec),
            workdir=task.workdir,
            out_path=task.workdir + "/" + OUTPUT_FILE,
            # the start command's environment over the spawners' (this process's)
            env=self.app_launcher.process_env(spec, {}),
            wall_time_sec=task.wall_time_sec,
            note=(task.job_id, task.session_id, task.attempt),
            python=task.python,
            ignore_sigpipe=self.app_launcher.ignore_sigpipe,
        )

    def _handle(self, timeout: float) -> None:
        out = self.engine.handle(self.spawners.wait(timeout))
        now = time.time()
        started = out.started + [(task.job_id, now) for task, _ in out.failed]
        done = [Outcome(task.job_id, None, now, now, error=message) for task, message in out.failed]
        for task, ex in out.ended:
            done.append(self._finished(task, ex))
        if out.ended:  # once per batch, as serial mode does
            self.engine.pace(self.ended.rate() / self.slots, self.ctx.settings.launcher.prefetch)
        # out.cancelled: never started; the server releases them with the session
        if started or done:
            self.ctx.sink.report(started=started, done=done)
        if not len(self.engine) and not self.waiting:
            self.freed.idle()
            self.ended.idle()

    def _finished(self, task: Task, ex: Exit) -> Outcome:
        self.freed.add(node_equivalents(task))
        self.ended.add()
        log.debug("job %d ended: rc=%d", ex.key, ex.returncode)
        return exit_outcome(ex, task)

    # ------------------------------------------------------------ stopping

    def _shutdown(self) -> None:
        ctx = self.ctx
        if len(self.engine):
            log.info("stopping %d running job(s)", len(self.engine))
            self.engine.stop()
            while len(self.engine):
                self._handle(1.0)
        self.spawners.close()
        self.fetcher.close()
        log.info("launcher done (%s)", ctx.stop_reason or "finished")
        ctx.close()


def prepare(opts: LauncherOptions) -> MPIMode:
    """Everything that can be wrong before the first request: site, credentials, nodes,
    GPUs, app launcher (LauncherError, DiscoveryError, UnknownName: one line at the CLI)."""
    ctx = Context.load(opts)
    ls = ctx.settings.launcher
    node_list = nodes.discover(ls, hostfile=opts.hostfile)
    gpu_env = nodes.gpu_env(ls)
    launcher = app_launchers.get(ls.mpi_launcher)(executable=ls.mpiexec, extra_args=ls.mpi_args)
    return MPIMode(ctx, node_list, launcher, gpu_env)


def run(opts: LauncherOptions) -> int:
    return prepare(opts).run()
