"""The autoscaler: decide which allocations to request and which to withdraw.

Two halves, kept apart so the decisions can be tested without any scheduler:

* **policies** are pure functions of a :class:`Snapshot` (the backlog's node
  footprint and wall times, the allocations already asked for, the idle nodes they
  hold, the scheduler's backfill windows, the clock) and :class:`Limits`; they
  return a :class:`Decision`. Policies live in a registry (``@register_policy``);
  ``backlog`` is the default.
* the :class:`Autoscaler` service reads the snapshot from the server and the
  scheduler, asks the policy, and applies the decision as BatchJob creations and
  deletions (the scheduler service submits and cancels them).

Guarantees of the backlog policy (tests/hypothesis in suites/site/scheduler):
every request is within min/max nodes and min/max wall time, the number of
queued allocations never exceeds ``max_queued``, nothing is requested when nothing
is runnable, and deciding again on the state the decision produces changes
nothing (no submit/withdraw thrashing on a steady backlog). See docs/autoscaler.md.
"""

from __future__ import annotations

import math
import time
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import ClassVar

from runner.models import BatchJob, Job
from runner.platform.schedulers import BackfillWindow, BatchScheduler, SchedulerError, create, get
from runner.registry import Registry
from runner.site.service import Service, SiteContext, register_service
from runner.site.settings import AutoscalerSettings
from runner.states import BACKLOG, BatchJobState, JobState

#: BatchJob option marking allocations the autoscaler made (and may withdraw); not rendered.
ORIGIN_OPTION = "_origin"
ORIGIN = "autoscaler"

# ---------------------------------------------------------------- the pure part


@dataclass(frozen=True)
class Limits:
    """What the autoscaler may ask for. Times in minutes; 0 disables a timeout."""

    min_nodes: int = 1
    max_nodes: int = 1
    min_wall_time_min: int = 10
    max_wall_time_min: int = 60
    max_queued: int = 1
    max_queue_wait_min: float = 0
    idle_timeout_min: float = 5
    #: nodes all allocations together may hold (queued and running); None: no cap. The
    #: ``local`` scheduler caps it at 1 (one machine), a facility at its partition size.
    max_total_nodes: int | None = None

    def __post_init__(self) -> None:
        if not 1 <= self.min_nodes <= self.max_nodes:
            raise ValueError(
                f"autoscaler: need 1 <= min_nodes ({self.min_nodes}) <= max_nodes ({self.max_nodes})"
            )
        if not 1 <= self.min_wall_time_min <= self.max_wall_time_min:
            raise ValueError(
                f"autoscaler: need 1 <= min_wall_time_min ({self.min_wall_time_min}) "
                f"<= max_wall_time_min ({self.max_wall_time_min})"
            )
        if self.max_total_nodes is not None and self.max_total_nodes < self.min_nodes:
            raise ValueError(
                f"autoscaler: max_total_nodes ({self.max_total_nodes}, what the scheduler can give) "
                f"< min_nodes ({self.min_nodes})"
            )
        if self.max_queued < 0 or self.max_queue_wait_min < 0 or self.idle_timeout_min < 0:
            raise ValueError("autoscaler: max_queued, max_queue_wait_min and idle_timeout_min must be >= 0")

    @classmethod
    def from_settings(cls, s: AutoscalerSettings, *, capacity_nodes: int | None = None) -> Limits:
        """Limits from settings.yml; ``capacity_nodes`` (what the scheduler can ever give) caps the total."""
        total = s.max_total_nodes
        if capacity_nodes is not None:
            total = capacity_nodes if total is None else min(total, capacity_nodes)
        return cls(
            max_total_nodes=total,
            min_nodes=s.min_nodes, max_nodes=s.max_nodes, min_wall_time_min=s.min_wall_time_min,
            max_wall_time_min=s.max_wall_time_min, max_queued=s.max_queued,
            max_queue_wait_min=s.max_queue_wait_min, idle_timeout_min=s.idle_timeout_min,
        )


@dataclass(frozen=True)
class JobShape:
    """``count`` backlog jobs of one shape. ``wall_time_min`` 0: unknown (assume it fills an allocation)."""

    num_nodes: int = 1
    node_packing_count: int = 1
    wall_time_min: float = 0
    count: int = 1

    @property
    def footprint(self) -> float:
        """Nodes one job occupies (several packed jobs share a node)."""
        return self.num_nodes / self.node_packing_count


@dataclass(frozen=True)
class Allocation:
    """A BatchJob that is asked for, queued or running (not withdrawn, not ended)."""

    id: int
    num_nodes: int
    wall_time_min: float
    running: bool
    submitted_at_min: float
    #: nodes its launcher keeps busy with jobs (running allocations only).
    busy_nodes: float = 0
    #: made by the autoscaler, so the autoscaler may withdraw it.
    withdrawable: bool = True

    @property
    def idle_nodes(self) -> float:
        return max(0.0, self.num_nodes - self.busy_nodes) if self.running else 0.0


@dataclass(frozen=True)
class Snapshot:
    now_min: float
    backlog: tuple[JobShape, ...] = ()
    allocations: tuple[Allocation, ...] = ()
    windows: tuple[BackfillWindow, ...] = ()
    #: since when the site has had nothing to do (no backlog, no running job); None: busy.
    idle_since_min: float | None = None


@dataclass(frozen=True)
class Request:
    num_nodes: int
    wall_time_min: int
    reason: str = ""


@dataclass(frozen=True)
class Withdraw:
    id: int
    reason: str = ""


@dataclass(frozen=True)
class Decision:
    submit: tuple[Request, ...] = ()
    withdraw: tuple[Withdraw, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.submit or self.withdraw)


class Policy(ABC):
    """A pure decision: same snapshot and limits, same decision; no I/O."""

    name: ClassVar[str] = ""

    @abstractmethod
    def decide(self, snapshot: Snapshot, limits: Limits) -> Decision: ...


POLICIES: Registry[type[Policy]] = Registry("autoscaler policy")
register_policy = POLICIES.register


def get_policy(name: str) -> Policy:
    """An instance of the policy called ``name``."""
    return POLICIES.get(name)()


def runnable(backlog: Iterable[JobShape], limits: Limits) -> list[JobShape]:
    """Backlog jobs an allocation within the limits can run at all."""
    return [
        j for j in backlog
        if j.count > 0 and math.ceil(j.footprint) <= limits.max_nodes
        and j.wall_time_min <= limits.max_wall_time_min
    ]


def clamp(value: float, low: int, high: int) -> int:
    return int(min(high, max(low, math.ceil(value))))


@register_policy("backlog")
class BacklogPolicy(Policy):
    """Ask for enough nodes to run the backlog within one allocation's wall time.

    * demand = max(largest job's nodes, min(all jobs side by side, node-minutes / wall time));
    * supply = nodes of queued allocations + idle nodes of running ones;
    * the deficit is requested in allocations of min..max nodes, first into backfill
      windows (they start now), while fewer than ``max_queued`` are queued and the
      total stays within ``max_total_nodes``;
    * a queued allocation waiting longer than ``max_queue_wait_min`` is withdrawn;
    * with nothing runnable for ``idle_timeout_min``, queued allocations and running
      ones with no busy node are withdrawn; nothing is ever requested then.

    Supply never shrinks because of the backlog alone, so a steady backlog never
    makes it withdraw what it just asked for.
    """

    def decide(self, snapshot: Snapshot, limits: Limits) -> Decision:
        now = snapshot.now_min
        jobs = runnable(snapshot.backlog, limits)
        withdraw: list[Withdraw] = []

        if not jobs:
            idle_for = None if snapshot.idle_since_min is None else now - snapshot.idle_since_min
            if idle_for is not None and idle_for >= limits.idle_timeout_min:
                for a in snapshot.allocations:
                    if a.withdrawable and (not a.running or a.busy_nodes <= 0):
                        withdraw.append(Withdraw(a.id, f"nothing to run for {idle_for:.1f} min"))
            return Decision(withdraw=tuple(withdraw))

        if limits.max_queue_wait_min > 0:
            for a in snapshot.allocations:
                waited = now - a.submitted_at_min
                if a.withdrawable and not a.running and waited > limits.max_queue_wait_min:
                    reason = f"queued {waited:.1f} min > {limits.max_queue_wait_min} min"
                    withdraw.append(Withdraw(a.id, reason))
        gone = {w.id for w in withdraw}
        kept = [a for a in snapshot.allocations if a.id not in gone]

        longest = max(j.wall_time_min for j in jobs)
        wall = clamp(longest or limits.min_wall_time_min, limits.min_wall_time_min, limits.max_wall_time_min)
        biggest = max(math.ceil(j.footprint) for j in jobs)
        width = sum(j.count * j.footprint for j in jobs)
        node_minutes = sum(j.count * j.footprint * (j.wall_time_min or wall) for j in jobs)
        demand = max(biggest, math.ceil(min(width, node_minutes / wall) - 1e-9))
        supply = sum(a.num_nodes for a in kept if not a.running) + sum(a.idle_nodes for a in kept)
        deficit = demand - supply
        queued = sum(1 for a in kept if not a.running)

        floor = max(limits.min_nodes, biggest)
        room = math.inf if limits.max_total_nodes is None else limits.max_total_nodes - sum(
            a.num_nodes for a in kept)
        windows = sorted(snapshot.windows, key=lambda w: -w.num_nodes)
        submit: list[Request] = []
        while deficit > 1e-9 and queued + len(submit) < limits.max_queued and room >= floor:
            size = clamp(min(deficit, room), floor, limits.max_nodes)
            req_wall = wall
            reason = f"backlog needs {demand} node(s), {supply:g} available or coming"
            fit = next((w for w in windows if w.num_nodes >= floor and
                        (w.wall_time_min is None or w.wall_time_min >= limits.min_wall_time_min)), None)
            if fit is not None:
                size = clamp(min(size, fit.num_nodes), floor, limits.max_nodes)
                if fit.wall_time_min is not None:
                    req_wall = clamp(min(wall, fit.wall_time_min), limits.min_wall_time_min,
                                     limits.max_wall_time_min)
                windows.remove(fit)
                if fit.num_nodes > size:
                    windows.append(replace(fit, num_nodes=fit.num_nodes - size))
                reason += f"; fits a backfill window of {fit.num_nodes} node(s)"
            submit.append(Request(size, req_wall, reason))
            deficit -= size
            room -= size
        return Decision(submit=tuple(submit), withdraw=tuple(withdraw))


def apply(snapshot: Snapshot, decision: Decision) -> Snapshot:
    """The snapshot after a decision took effect (withdrawn gone, requests queued now)."""
    gone = {w.id for w in decision.withdraw}
    kept = [a for a in snapshot.allocations if a.id not in gone]
    next_id = max((a.id for a in snapshot.allocations), default=0) + 1
    for i, r in enumerate(decision.submit):
        kept.append(Allocation(next_id + i, r.num_nodes, r.wall_time_min, False, snapshot.now_min))
    return replace(snapshot, allocations=tuple(kept))


def group_backlog(jobs: Iterable[Job]) -> tuple[JobShape, ...]:
    shapes = Counter((j.num_nodes, j.node_packing_count, j.wall_time_min) for j in jobs)
    return tuple(JobShape(n, p, w, c) for (n, p, w), c in sorted(shapes.items()))


# ---------------------------------------------------------------- the service

ACTIVE_BATCH = (BatchJobState.PENDING_SUBMISSION, BatchJobState.QUEUED, BatchJobState.RUNNING,
                BatchJobState.UNKNOWN)
#: most backlog jobs read per round (their shapes are what matters, not every job).
MAX_BACKLOG_READ = 10_000


def _minutes(t: datetime | float) -> float:
    return (t.timestamp() if isinstance(t, datetime) else t) / 60.0


@register_service("autoscaler")
class Autoscaler(Service):
    """Reads backlog, allocations and backfill windows; applies the policy's decision."""

    def __init__(self, ctx: SiteContext, *, clock: Callable[[], float] = time.time) -> None:
        super().__init__(ctx)
        self.settings = ctx.settings.autoscaler
        self.period_sec = self.settings.poll_interval_sec
        self.limits = Limits.from_settings(
            self.settings, capacity_nodes=get(ctx.settings.scheduler.name).capacity_nodes)
        self.policy = get_policy(self.settings.policy)
        self.clock = clock
        self.idle_since_min: float | None = None
        self._scheduler: BatchScheduler | None = None
        self.last_decision: Decision = Decision()

    @property
    def scheduler(self) -> BatchScheduler:
        if self._scheduler is None:
            self._scheduler = create(self.ctx.settings.scheduler.name, self.ctx.batch_dir)
        return self._scheduler

    def snapshot(self) -> Snapshot:
        client, site_id = self.ctx.client, self.ctx.site_id
        now = _minutes(self.clock())
        waiting = client.jobs.filter(site_id=site_id, state=sorted(BACKLOG), limit=MAX_BACKLOG_READ)
        # jobs a launcher session already holds are served, whatever their state says
        backlog = group_backlog(j for j in waiting if j.session_id is None)
        running_jobs = client.jobs.filter(site_id=site_id, state=[JobState.RUNNING])
        busy: dict[int, float] = {}
        for j in running_jobs:
            if j.batch_job_id is not None:
                busy[j.batch_job_id] = busy.get(j.batch_job_id, 0.0) + j.num_nodes / j.node_packing_count
        active = client.batch_jobs.filter(site_id=site_id, state=ACTIVE_BATCH)
        allocations = tuple(_allocation(b, busy.get(b.id, 0.0)) for b in active)
        if backlog or running_jobs:
            self.idle_since_min = None
        elif self.idle_since_min is None:
            self.idle_since_min = now
        try:
            windows = tuple(self.scheduler.backfill_windows()) if backlog else ()
        except SchedulerError as exc:
            self.log.warning("no backfill windows this round: %s", exc)
            windows = ()
        return Snapshot(now, backlog, allocations, windows, self.idle_since_min)

    def run_once(self) -> None:
        snap = self.snapshot()
        decision = self.policy.decide(snap, self.limits)
        self.last_decision = decision
        self.apply(decision)

    def apply(self, decision: Decision) -> list[BatchJob]:
        s, client, made = self.settings, self.ctx.client, []
        for w in decision.withdraw:
            self.log.info("withdrawing batch job %s: %s", w.id, w.reason)
            client.batch_jobs.delete(w.id)
        for r in decision.submit:
            batch_job = client.batch_jobs.create(
                site_id=self.ctx.site_id, num_nodes=r.num_nodes, wall_time_min=r.wall_time_min,
                job_mode=s.job_mode, project=s.project, queue=s.queue,
                options={ORIGIN_OPTION: ORIGIN},
            )
            self.log.info("requested batch job %s: %d node(s) x %d min (%s)", batch_job.id, r.num_nodes,
                          r.wall_time_min, r.reason)
            made.append(batch_job)
        return made


def _allocation(b: BatchJob, busy: float) -> Allocation:
    return Allocation(
        id=b.id, num_nodes=b.num_nodes, wall_time_min=b.wall_time_min,
        running=b.state == BatchJobState.RUNNING,
        submitted_at_min=_minutes(b.created_at), busy_nodes=busy,
        withdrawable=b.options.get(ORIGIN_OPTION) == ORIGIN,
    )


def shapes(jobs: Sequence[tuple[int, float]]) -> tuple[JobShape, ...]:
    """Convenience for tests and docs: ``[(nodes, wall_min), ...]`` -> grouped shapes."""
    counts = Counter(jobs)
    return tuple(JobShape(n, 1, w, c) for (n, w), c in sorted(counts.items()))


__all__ = [
    "POLICIES", "Allocation", "Autoscaler", "BacklogPolicy", "Decision", "JobShape", "Limits", "Policy",
    "Request", "Snapshot", "Withdraw", "apply", "get_policy", "group_backlog", "register_policy", "runnable",
    "shapes",
]
