"""The backlog policy driven against a simulated facility: a scheduler clock, queue waits,
allocations that pack jobs onto their nodes, and a backlog that comes in waves.

This is a model of the facility, not of tolu: the autoscaler's own code (the policy
and ``apply``'s bookkeeping) runs unchanged; only the cluster is simulated, minute by
minute. It checks the queue bounds at every step, that every job runs, that nothing
thrashes, and that the allocated node-minutes are mostly used.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import pytest

from runner.site.autoscaler import Allocation, BacklogPolicy, JobShape, Limits, Snapshot


@dataclass
class SimJob:
    nodes: int
    wall: int  # requested minutes
    runtime: int  # real minutes (<= wall)
    end: int = -1


@dataclass
class SimAllocation:
    id: int
    nodes: int
    wall: int
    submitted: int
    starts: int  # when the facility will start it
    started: int = -1
    ended: int = -1
    withdrawn: bool = False
    idle_since: int = -1
    running: list[SimJob] = field(default_factory=list)

    def busy(self) -> int:
        return sum(j.nodes for j in self.running)


@dataclass
class Stats:
    allocated_node_min: float = 0
    busy_node_min: float = 0
    submits: int = 0
    withdrawals: int = 0
    early_withdrawals: int = 0
    max_queued_seen: int = 0


def arrivals(minute: int, rng: random.Random) -> list[SimJob]:
    """Waves: a burst at 0, a trickle 60-180, quiet, a burst of wide jobs at 300."""
    def job(nodes: int) -> SimJob:
        wall = rng.choice([5, 10, 20, 30])
        return SimJob(nodes, wall, rng.randint(max(1, wall // 2), wall))

    if minute == 0:
        return [job(rng.randint(1, 2)) for _ in range(120)]
    if 60 <= minute < 180 and minute % 3 == 0:
        return [job(1) for _ in range(rng.randint(0, 4))]
    if minute == 300:
        return [job(rng.randint(2, 8)) for _ in range(40)]
    return []


def simulate(
    limits: Limits, *, seed: int, minutes: int = 600, launcher_idle_min: int = 3
) -> tuple[Stats, list[SimJob]]:
    rng = random.Random(seed)
    policy = BacklogPolicy()
    backlog: list[SimJob] = []
    done: list[SimJob] = []
    allocs: list[SimAllocation] = []
    stats = Stats()
    idle_since: int | None = None
    for now in range(minutes):
        backlog.extend(arrivals(now, rng))
        # ---- the facility: start what is due, end what ran out of time or went idle
        for a in allocs:
            if a.ended >= 0 or a.withdrawn:
                continue
            if a.started < 0 and now >= a.starts:
                a.started = now
            if a.started < 0:
                continue
            for j in list(a.running):
                if now >= j.end:
                    a.running.remove(j)
                    done.append(j)
            # the launcher packs jobs that fit its free nodes and remaining time (largest first)
            left = a.started + a.wall - now
            free = a.nodes - a.busy()
            for j in sorted(backlog, key=lambda j: -j.nodes):
                if j.nodes <= free and j.wall <= left:
                    backlog.remove(j)
                    j.end = now + j.runtime
                    a.running.append(j)
                    free -= j.nodes
            if a.running:
                a.idle_since = -1
            elif a.idle_since < 0:
                a.idle_since = now
            if left <= 0 or (not a.running and now - a.idle_since >= launcher_idle_min):
                a.ended = now
                for j in a.running:  # killed at the wall time: back to the backlog
                    backlog.append(SimJob(j.nodes, j.wall, j.runtime))
                a.running.clear()
        live = [a for a in allocs if a.ended < 0 and not a.withdrawn]
        for a in live:
            if a.started >= 0:
                stats.allocated_node_min += a.nodes
                stats.busy_node_min += a.busy()
        running_jobs = sum(len(a.running) for a in live)
        if backlog or running_jobs:
            idle_since = None
        elif idle_since is None:
            idle_since = now
        # ---- the autoscaler: snapshot, decide, apply
        shapes: dict[tuple[int, int], int] = {}
        for j in backlog:
            shapes[(j.nodes, j.wall)] = shapes.get((j.nodes, j.wall), 0) + 1
        snap = Snapshot(
            now_min=float(now),
            backlog=tuple(JobShape(n, 1, w, c) for (n, w), c in sorted(shapes.items())),
            allocations=tuple(
                Allocation(a.id, a.nodes, a.wall, a.started >= 0, float(a.submitted), float(a.busy()))
                for a in live
            ),
            idle_since_min=None if idle_since is None else float(idle_since),
        )
        decision = policy.decide(snap, limits)
        by_id = {a.id: a for a in live}
        for w in decision.withdraw:
            a = by_id[w.id]
            a.withdrawn = True
            stats.withdrawals += 1
            if a.started < 0 and limits.max_queue_wait_min and now - a.submitted < limits.max_queue_wait_min:
                stats.early_withdrawals += 1
            for j in a.running:
                backlog.append(SimJob(j.nodes, j.wall, j.runtime))
        for r in decision.submit:
            assert limits.min_nodes <= r.num_nodes <= limits.max_nodes
            assert limits.min_wall_time_min <= r.wall_time_min <= limits.max_wall_time_min
            allocs.append(SimAllocation(len(allocs) + 1, r.num_nodes, r.wall_time_min, now,
                                        starts=now + 1 + rng.randint(0, 15)))
            stats.submits += 1
        queued_now = sum(1 for a in allocs if a.ended < 0 and not a.withdrawn and a.started < 0)
        assert queued_now <= limits.max_queued, f"minute {now}: {queued_now} queued"
        stats.max_queued_seen = max(stats.max_queued_seen, queued_now)
    return stats, backlog


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize(
    "limits",
    [
        Limits(min_nodes=1, max_nodes=16, min_wall_time_min=30, max_wall_time_min=60, max_queued=2,
               idle_timeout_min=2),
        Limits(min_nodes=2, max_nodes=8, min_wall_time_min=20, max_wall_time_min=120, max_queued=3,
               max_queue_wait_min=20, idle_timeout_min=5),
    ],
    ids=["small-queue", "queue-wait"],
)
def test_simulated_facility(limits: Limits, seed: int) -> None:
    stats, leftover = simulate(limits, seed=seed)
    assert not leftover, f"{len(leftover)} jobs never ran"
    assert stats.max_queued_seen <= limits.max_queued
    assert stats.early_withdrawals == 0, "withdrew an allocation before its queue-wait limit"
    utilization = stats.busy_node_min / stats.allocated_node_min
    # Packing whole jobs into fixed-size allocations leaves some nodes idle at the tail of
    # each allocation and while launchers wait out their idle time; most must be busy.
    assert utilization >= 0.6, f"utilization {utilization:.2f} ({stats})"
    # It scales with the backlog instead of asking for one allocation per minute.
    assert stats.submits < 120, stats
