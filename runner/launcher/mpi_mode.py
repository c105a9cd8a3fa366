"""MPI mode: one process on the head node, one start command (``mpiexec``) per job.

The loop acquires jobs that fit the free nodes, places them with the node manager,
starts each through the site's app launcher with its hosts, and sleeps in the
process group's selector until a child exits, a wall time runs out or a signal
arrives. Status changes go to the batched reporter.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections import deque
from functools import partial

from runner.launcher.context import Context
from runner.launcher.fetcher import IDLE_ACQUIRE_SEC, Fetcher
from runner.launcher.options import LauncherOptions
from runner.launcher.outcome import Outcome, exit_outcome
from runner.launcher.pacing import RateMeter, ahead
from runner.launcher.procs import Events, Exit, ProcessGroup
from runner.launcher.tasks import Task, prepare_workdir
from runner.models import AcquireSpec
from runner.platform import app_launchers, nodes
from runner.platform.app_launchers import AppLauncher, LaunchSpec, UnsupportedJob
from runner.platform.gpus import GpuEnv
from runner.platform.node_manager import Assignment, JobRequest, NodeManager
from runner.roles import Role, announce

log = logging.getLogger("runner.launcher.mpi")

#: largest number of jobs asked for in one acquire.
ACQUIRE_BATCH = 1000
#: most start commands being started at once (each blocks a thread until exec).
SPAWN_THREADS = 4


def request_of(task: Task) -> JobRequest:
    return JobRequest(
        job_id=task.job_id,
        num_nodes=task.num_nodes,
        ranks_per_node=task.ranks_per_node,
        threads_per_rank=task.threads_per_rank,
        gpus_per_rank=task.gpus_per_rank,
        node_packing_count=task.node_packing_count,
    )


class MPIMode:
    def __init__(
        self, ctx: Context, node_list: list[nodes.Node], app_launcher: AppLauncher, gpu_env: GpuEnv
    ) -> None:
        self.ctx = ctx
        self.nodes = NodeManager(node_list, gpu_env)
        self.app_launcher = app_launcher
        slots = sum(max(1, n.cpus) for n in node_list)
        self.procs = ProcessGroup(die_with_parent=True, spawn_threads=min(SPAWN_THREADS, slots))
        self.fetcher = Fetcher(ctx, on_ready=self.procs.wake)
        self.waiting: deque[Task] = deque()
        self.running: dict[int, Task] = {}
        self.last_busy = time.time()
        self.base_env = dict(os.environ)
        #: node-equivalents held beyond what runs, so a finished job is replaced at
        #: once instead of after a round trip to the server.
        self.prefetch_nodes = len(node_list) * ctx.settings.launcher.prefetch
        #: node-equivalents freed per second by finished jobs
        self.freed = RateMeter()

    # ------------------------------------------------------------ the loop

    def run(self) -> int:
        ctx = self.ctx
        ctx.install_signals(self.procs.wake_fd)
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
                self._take_fetched()
                self._start_waiting()
                self._maybe_acquire()
                if self._idle_too_long():
                    ctx.request_stop(f"idle for {ctx.max_idle_sec:g} s")
                    break
                self._handle(self.procs.wait(self._timeout()))
        finally:
            self._shutdown()
        return 0

    def _timeout(self) -> float:
        now = time.time()
        t = IDLE_ACQUIRE_SEC
        room, extra = self._room()
        if not self.fetcher.busy and room > 1e-9 and room >= extra / 2:
            t = max(0.0, self.fetcher.quiet_until - now)
        if self.ctx.deadline is not None:
            t = min(t, max(0.0, self.ctx.deadline - now))
        if self.ctx.max_idle_sec is not None and not self.running:
            t = min(t, max(0.0, self.last_busy + self.ctx.max_idle_sec - now))
        return t

    def _idle_too_long(self) -> bool:
        # a request in flight does not count: the loop makes one every second while idle
        if self.running or self.waiting or self.fetcher.last_count:
            self.last_busy = time.time()
            return False
        limit = self.ctx.max_idle_sec
        return limit is not None and time.time() - self.last_busy >= limit

    # ------------------------------------------------------------ acquiring

    def _room(self) -> tuple[float, float]:
        """Node-equivalents the launcher may still take (free nodes plus the prefetch),
        and how many it holds beyond the free nodes (jobs waiting for a place)."""
        waiting = sum(t.num_nodes / (t.node_packing_count if t.num_nodes == 1 else 1) for t in self.waiting)
        extra = ahead(self.freed.rate(), self.fetcher.latency, self.prefetch_nodes)
        return self.nodes.free_node_equivalents() + extra - waiting, extra

    def _maybe_acquire(self) -> None:
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

    # ------------------------------------------------------------ starting

    def _start_waiting(self) -> None:
        # In order. A job that waits for whole nodes reserves them: jobs behind it
        # may still start, but only where they leave it enough idle nodes, so it
        # is not starved by a stream of small ones.
        still: deque[Task] = deque()
        reserved = 0
        #: shapes that did not fit in this pass: the same shape will not fit either
        no_room: set[tuple[int, int, int, int, int]] = set()
        while self.waiting:
            task = self.waiting.popleft()
            shape = (task.num_nodes, task.ranks_per_node, task.threads_per_rank,
                     task.gpus_per_rank, task.node_packing_count)
            if shape in no_room or self.nodes.free_node_equivalents() <= 1e-9:
                still.append(task)
                continue
            idle_before = self.nodes.idle_nodes()
            a = self.nodes.assign(request_of(task))
            idle_after = self.nodes.idle_nodes()
            if a is not None and reserved and idle_after < idle_before and idle_after < reserved:
                self.nodes.free(task.job_id)
                a = None
            if a is None:
                still.append(task)
                no_room.add(shape)
                if task.num_nodes > 1:
                    reserved = max(reserved, task.num_nodes)
                continue
            self._start(task, a)
        self.waiting = still

    def _start(self, task: Task, a: Assignment) -> None:
        spec = LaunchSpec(
            argv=task.argv,
            hosts=a.hosts,
            ranks_per_node=task.ranks_per_node,
            threads_per_rank=task.threads_per_rank,
            gpus_per_rank=task.gpus_per_rank,
            env={**task.env, **a.env()},
        )
        try:
            argv = self.app_launcher.command(spec)
        except UnsupportedJob as exc:
            self.nodes.free(task.job_id)
            self.ctx.fail(task.job_id, str(exc))
            return
        self.procs.submit(
            task.job_id,
            argv,
            cwd=task.out_path.parent,
            env=self.app_launcher.process_env(spec, self.base_env),
            out_path=task.out_path,
            wall_time_sec=task.wall_time_sec,
            prepare=partial(prepare_workdir, task),
        )
        self.running[task.job_id] = task
        log.debug("job %d starting on %s", task.job_id, ",".join(a.hosts))

    def _start_failed(self, job_id: int, message: str) -> None:
        self.running.pop(job_id, None)
        self.nodes.free(job_id)
        now = time.time()
        self.ctx.report_started(job_id, now)
        self.ctx.report_outcome(Outcome(job_id, None, now, now, error=message))

    def _handle(self, ev: Events) -> None:
        for job_id, started in ev.started:
            self.ctx.report_started(job_id, started)
        for job_id, message in ev.start_errors:
            self._start_failed(job_id, message)
        for job_id in ev.cancelled:  # never started: released with the session
            self.running.pop(job_id, None)
            self.nodes.free(job_id)
        for ex in ev.exits:
            self._finished(ex)

    def _finished(self, ex: Exit) -> None:
        task = self.running.pop(ex.key)
        a = self.nodes.free(ex.key)
        self.freed.add(float(a.share) * a.num_nodes)
        self.ctx.report_outcome(exit_outcome(ex, task))
        log.debug("job %d ended: rc=%d", ex.key, ex.returncode)

    # ------------------------------------------------------------ stopping

    def _shutdown(self) -> None:
        ctx = self.ctx
        if self.running:
            log.info("stopping %d running job(s)", len(self.running))
            self.procs.terminate_all()
            while self.running:
                self._handle(self.procs.wait(1.0))
        self.procs.close()
        self.fetcher.close()
        log.info("launcher done (%s)", ctx.stop_reason or "finished")
        ctx.close()


def run(opts: LauncherOptions) -> int:
    announce(Role.LAUNCHER)  # fetches, starts and reports every job itself
    # see serial_mode.SWITCH_INTERVAL_SEC: hand the GIL to a returning spawner sooner
    sys.setswitchinterval(0.0005)
    ctx = Context.load(opts)
    ls = ctx.settings.launcher
    node_list = nodes.discover(ls, hostfile=opts.hostfile)
    launcher = app_launchers.get(ls.mpi_launcher)(executable=ls.mpiexec, extra_args=ls.mpi_args)
    return MPIMode(ctx, node_list, launcher, nodes.gpu_env(ls)).run()
