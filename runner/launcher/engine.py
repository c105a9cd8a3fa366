"""The coordinator's part in running tasks: place them on the node manager's resources, keep every slot busy.

Both modes hand their tasks to an ``Engine``. A task that fits now gets an
``Assignment`` and is started in a spawner (runner/launcher/spawners.py). A task that
does not fit now, but has the same shape (nodes, ranks, threads, GPUs, packing) as a
running one, is queued behind it *in that task's spawner* (a chain, up to ``depth``
deep): when the running task ends, the spawner starts the next one at once, in the
same slot and with the same resources (the same GPU ids, the same hosts), without a
round trip through the coordinator; the coordinator hands the ``Assignment`` on
(``NodeManager.transfer``) when it hears of the end. So a node's slots stay busy
while the coordinator is busy elsewhere, and the coordinator sends starts in batches.

A waiting multi-node job must be able to drain nodes: a mode that reserves nodes
places with ``chain=False``, and a chain is never extended past a job of another
shape that waits (the caller offers tasks in order and stops chaining then).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from runner.launcher.spawner import FLUSH_SEC
from runner.launcher.spawners import Ended, Events, SpawnerPool
from runner.launcher.tasks import Task
from runner.platform.node_manager import Assignment, JobRequest, NodeManager

Shape = tuple[int, int, int, int, int]

#: most tasks queued behind one running task.
MAX_DEPTH = 64
#: seconds of a slot's work (at its finishing rate) that its chain holds.
HOLD_SEC = 2 * FLUSH_SEC
#: seconds of a slot's work left in its chain when the spawner asks for more at once.
RUNWAY_SEC = 0.03


def chain_depth(rate_per_slot: float, floor: int) -> int:
    """How many tasks to queue behind each running one: HOLD_SEC of the slot's work at
    its finishing rate (two of the spawner's flush periods), at least ``floor`` (the
    site's ``prefetch``), at most MAX_DEPTH. Long tasks need no more than the floor, and
    a node then holds no more work than it needs."""
    return max(floor, min(MAX_DEPTH, math.ceil(rate_per_slot * HOLD_SEC)))


def refill_mark(rate_per_slot: float, depth: int) -> int:
    """How few tasks may be left queued behind a slot's running one before its spawner
    asks the coordinator for more at once, instead of within its flush period: RUNWAY_SEC
    of the slot's work, which keeps it busy while the coordinator answers, and at most
    half the chain, so that each answer carries several tasks. 0: ask when none is left
    (the slot is about to idle; every chain asks then)."""
    return min(depth // 2, math.ceil(rate_per_slot * RUNWAY_SEC))


@dataclass(slots=True)
class Start:
    """What the spawner needs to start one task (built by the mode from a task and its place).

    Not frozen: one is built per job, and a frozen dataclass sets each field through
    ``object.__setattr__`` (three times the cost)."""

    argv: list[str]
    workdir: str
    out_path: str
    #: variables over the spawners' base environment
    env: dict[str, str]
    wall_time_sec: float | None = None
    #: (job_id, session_id, attempt): the exit note and recovery (spawner.Spawn)
    note: tuple[int, int, int] | None = None
    python: bool = False
    #: see app_launchers.AppLauncher.ignore_sigpipe
    ignore_sigpipe: bool = False


Build = Callable[[Task, Assignment], Start]


def request_of(task: Task) -> JobRequest:
    return JobRequest(
        job_id=task.job_id,
        num_nodes=task.num_nodes,
        ranks_per_node=task.ranks_per_node,
        threads_per_rank=task.threads_per_rank,
        gpus_per_rank=task.gpus_per_rank,
        node_packing_count=task.node_packing_count,
    )


def shape_of(task: Task) -> Shape:
    return (task.num_nodes, task.ranks_per_node, task.threads_per_rank, task.gpus_per_rank,
            task.node_packing_count)


def equivalents(num_nodes: int, node_packing_count: int) -> float:
    """How much of the allocation a job takes, in nodes (a job packed 4 to a node: 0.25)."""
    return num_nodes / node_packing_count if num_nodes == 1 else float(num_nodes)


def node_equivalents(task: Task) -> float:
    """``equivalents`` of a task."""
    return equivalents(task.num_nodes, task.node_packing_count)


def shape_equivalents(shape: Shape) -> float:
    """``node_equivalents`` of any task of ``shape``."""
    return equivalents(shape[0], shape[4])


class _Chain:
    """Tasks sharing one slot: the first runs (or is starting), the rest follow it in turn."""

    __slots__ = ("assignment", "keys", "open", "shape")

    def __init__(self, key: int, assignment: Assignment, shape: Shape) -> None:
        self.keys: deque[int] = deque((key,))
        self.assignment = assignment
        self.shape = shape
        self.open = False


@dataclass
class Outcomes:
    """What one batch of spawner events means for the tasks."""

    started: list[tuple[int, float]]
    ended: list[tuple[Task, Ended]]
    #: tasks whose start failed, with the message
    failed: list[tuple[Task, str]]
    #: tasks never started (the engine is stopping)
    cancelled: list[Task]


class Engine:
    """Places tasks and starts them through a spawner pool; see the module docstring."""

    def __init__(self, nm: NodeManager, pool: SpawnerPool, build: Build, *, depth: int = 2) -> None:
        self.nm = nm
        self.pool = pool
        self.build = build
        self.depth = max(0, depth)
        #: a spawner asks for more at once when a chain has this few tasks left (refill_mark)
        self.low = 0
        #: started or queued in a spawner, by job id
        self.tasks: dict[int, Task] = {}
        self._chain_of: dict[int, _Chain] = {}
        #: chains that can take one more task, by shape
        self._open: dict[Shape, deque[_Chain]] = {}
        #: node-equivalents of the tasks queued behind running ones (they hold nothing yet)
        self.backlog = 0.0

    def __len__(self) -> int:
        return len(self.tasks)

    def pace(self, rate_per_slot: float, floor: int) -> None:
        """Size the chains for a slot's finishing rate (``chain_depth``, ``refill_mark``)."""
        self.depth = depth = chain_depth(rate_per_slot, floor)
        self.low = refill_mark(rate_per_slot, depth)

    def place(
        self, task: Task, *, chain: bool = True, keep_idle: int = 0, try_now: bool = True
    ) -> Assignment | bool:
        """Start ``task`` now (returns its Assignment), queue it behind a running task of its
        shape (True), or leave it (False: nothing fits). ``keep_idle``: do not start it
        where that would leave fewer idle nodes than that (nodes reserved for a waiting
        multi-node job). ``try_now=False``: go straight to queueing (the caller saw a task
        of this shape find no room in this pass). ``build`` errors propagate, with nothing
        held."""
        shape = shape_of(task)
        nm = self.nm
        idle_before = nm.idle_nodes() if keep_idle else 0
        a = nm.assign(request_of(task)) if try_now else None
        if a is not None and keep_idle:
            idle_after = nm.idle_nodes()
            if idle_after < idle_before and idle_after < keep_idle:
                nm.free(task.job_id)
                a = None
        if a is not None:
            try:
                start = self.build(task, a)
            except BaseException:
                self.nm.free(task.job_id)
                raise
            ch = _Chain(task.job_id, a, shape)
            self._submit(task, start, ch, after=None)
            self._reopen(ch)
            return a
        if not chain or not self.depth:
            return False
        chains = self._open.get(shape)
        if not chains:
            return False
        # round the open chains, so successors spread over the slots
        ch = chains[0]
        start = self.build(task, ch.assignment)  # its slot's resources: the same GPUs, hosts
        after = ch.keys[-1]
        ch.keys.append(task.job_id)
        self._submit(task, start, ch, after=after)
        self.backlog += node_equivalents(task)
        chains.popleft()
        if len(ch.keys) > self.depth:
            ch.open = False
        else:
            chains.append(ch)
        return True

    def _submit(self, task: Task, start: Start, ch: _Chain, after: int | None) -> None:
        self.pool.submit(
            task.job_id,
            start.argv,
            workdir=start.workdir,
            out_path=start.out_path,
            env=start.env,
            wall_time_sec=start.wall_time_sec,
            note=start.note,
            python=start.python,
            after=after,
            ignore_sigpipe=start.ignore_sigpipe,
            low=self.low,
        )
        self.tasks[task.job_id] = task
        self._chain_of[task.job_id] = ch

    def _reopen(self, ch: _Chain) -> None:
        if self.depth and not ch.open and len(ch.keys) <= self.depth:
            ch.open = True
            self._open.setdefault(ch.shape, deque()).append(ch)

    def _release(self, key: int) -> Assignment | None:
        """``key`` is done with its slot: hand the slot to its successor, or free it.
        Returns the assignment when it was freed."""
        ch = self._chain_of.pop(key)
        if ch.keys[0] != key:  # a queued successor that never started
            ch.keys.remove(key)
            self.backlog -= node_equivalents(self.tasks[key])
            self._reopen(ch)
            return None
        ch.keys.popleft()
        if ch.keys:
            self.backlog -= node_equivalents(self.tasks[ch.keys[0]])
            ch.assignment = self.nm.transfer(key, ch.keys[0])
            self._reopen(ch)
            return None
        if ch.open:
            self._open[ch.shape].remove(ch)
            ch.open = False
        return self.nm.free(key)

    def handle(self, ev: Events) -> Outcomes:
        """Account for what the spawners reported (ends first: they hand slots on)."""
        tasks = self.tasks
        release = self._release
        out = Outcomes(ev.started, [], [], [])
        for ex in ev.exits:
            release(ex.key)
            out.ended.append((tasks.pop(ex.key), ex))
        for key, message in ev.start_errors:
            release(key)
            out.failed.append((tasks.pop(key), message))
        for key in ev.cancelled:
            release(key)
            out.cancelled.append(tasks.pop(key))
        return out

    def stop(self) -> None:
        """Stop every task (they end stopped); queued ones are cancelled."""
        self.pool.terminate_all()
