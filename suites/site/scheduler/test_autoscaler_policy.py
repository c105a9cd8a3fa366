"""The backlog policy's guarantees, as hypothesis properties over any snapshot and limits."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from runner.platform.schedulers import BackfillWindow
from runner.site.autoscaler import (
    Allocation,
    BacklogPolicy,
    Decision,
    JobShape,
    Limits,
    Snapshot,
    apply,
    get_policy,
    runnable,
)

POLICY = BacklogPolicy()


@st.composite
def limits(draw: st.DrawFn) -> Limits:
    min_nodes = draw(st.integers(1, 8))
    min_wall = draw(st.integers(1, 60))
    return Limits(
        min_nodes=min_nodes,
        max_nodes=draw(st.integers(min_nodes, 64)),
        min_wall_time_min=min_wall,
        max_wall_time_min=draw(st.integers(min_wall, 24 * 60)),
        max_queued=draw(st.integers(0, 6)),
        max_queue_wait_min=draw(st.sampled_from([0, 5, 30, 120])),
        idle_timeout_min=draw(st.sampled_from([0, 1, 5, 30])),
        max_total_nodes=draw(st.one_of(st.none(), st.integers(min_nodes, 200))),
    )


job_shapes = st.builds(
    JobShape,
    num_nodes=st.integers(1, 80),
    node_packing_count=st.integers(1, 16),
    wall_time_min=st.sampled_from([0, 1, 5, 10, 30, 60, 240, 2000]),
    count=st.integers(0, 500),
)


@st.composite
def snapshots(draw: st.DrawFn) -> Snapshot:
    now = draw(st.floats(1000, 2000))
    allocations = []
    for i in range(draw(st.integers(0, 6))):
        running = draw(st.booleans())
        nodes = draw(st.integers(1, 64))
        allocations.append(Allocation(
            id=i + 1, num_nodes=nodes, wall_time_min=draw(st.integers(1, 600)), running=running,
            submitted_at_min=now - draw(st.floats(0, 500)),
            busy_nodes=draw(st.floats(0, nodes)) if running else 0.0,
            withdrawable=draw(st.booleans()),
        ))
    windows = draw(st.lists(st.builds(BackfillWindow, num_nodes=st.integers(1, 100),
                                      wall_time_min=st.one_of(st.none(), st.floats(1, 600))), max_size=3))
    idle_since = draw(st.one_of(st.none(), st.floats(0, now)))
    return Snapshot(now, tuple(draw(st.lists(job_shapes, max_size=5))), tuple(allocations), tuple(windows),
                    idle_since)


def queued(snapshot: Snapshot) -> int:
    return sum(1 for a in snapshot.allocations if not a.running)


@given(snapshots(), limits())
@settings(max_examples=400, deadline=None)
def test_requests_stay_within_limits(snap: Snapshot, lim: Limits) -> None:
    decision = POLICY.decide(snap, lim)
    for r in decision.submit:
        assert lim.min_nodes <= r.num_nodes <= lim.max_nodes, r
        assert lim.min_wall_time_min <= r.wall_time_min <= lim.max_wall_time_min, r
    after = apply(snap, decision)
    if decision.submit:
        assert queued(after) <= lim.max_queued
        if lim.max_total_nodes is not None:
            assert sum(a.num_nodes for a in after.allocations) <= lim.max_total_nodes
    withdrawable = {a.id for a in snap.allocations if a.withdrawable}
    assert {w.id for w in decision.withdraw} <= withdrawable, "withdrew an allocation it did not make"


@given(snapshots(), limits())
@settings(max_examples=300, deadline=None)
def test_never_requests_when_nothing_is_runnable(snap: Snapshot, lim: Limits) -> None:
    nothing = Snapshot(snap.now_min, (), snap.allocations, snap.windows, snap.idle_since_min)
    assert POLICY.decide(nothing, lim).submit == ()
    too_big = tuple(JobShape(lim.max_nodes + 1, 1, 10, 5) for _ in range(2))
    assert not runnable(too_big, lim)
    assert POLICY.decide(Snapshot(snap.now_min, too_big, snap.allocations), lim).submit == ()


@given(snapshots(), limits())
@settings(max_examples=400, deadline=None)
def test_converges_no_thrashing(snap: Snapshot, lim: Limits) -> None:
    """Deciding again on what a decision produced changes nothing, a few minutes on too."""
    first = POLICY.decide(snap, lim)
    after = apply(snap, first)
    assert POLICY.decide(after, lim) == Decision()
    # Time passes with the same backlog: nothing it just asked for is withdrawn before the
    # queue-wait limit, and it does not ask for more.
    later = Snapshot(after.now_min + 0.5, after.backlog, after.allocations, after.windows,
                     after.idle_since_min)
    again = POLICY.decide(later, lim)
    new_ids = {a.id for a in after.allocations} - {a.id for a in snap.allocations}
    if lim.max_queue_wait_min == 0 or lim.max_queue_wait_min > 0.5:
        assert not new_ids & {w.id for w in again.withdraw}
    assert again.submit == () or any(w for w in again.withdraw), "asked for more on a steady backlog"


@given(limits(), st.lists(job_shapes, min_size=1, max_size=5))
@settings(max_examples=300, deadline=None)
def test_asks_for_work_when_runnable_and_nothing_allocated(lim: Limits, backlog: list[JobShape]) -> None:
    snap = Snapshot(100.0, tuple(backlog))
    decision = POLICY.decide(snap, lim)
    jobs = runnable(backlog, lim)
    biggest = max((math.ceil(j.footprint) for j in jobs), default=0)
    fits = lim.max_total_nodes is None or lim.max_total_nodes >= max(lim.min_nodes, biggest)
    if jobs and lim.max_queued > 0 and fits:
        assert decision.submit, "runnable backlog, nothing allocated, yet no request"
        assert all(r.num_nodes >= biggest for r in decision.submit), "request too small for the largest job"


def test_prefers_a_backfill_window() -> None:
    lim = Limits(min_nodes=1, max_nodes=32, min_wall_time_min=10, max_wall_time_min=120, max_queued=2)
    snap = Snapshot(0.0, (JobShape(1, 1, 30, 64),), windows=(BackfillWindow(8, 45.0, "debug"),))
    decision = POLICY.decide(snap, lim)
    assert decision.submit[0].num_nodes == 8 and decision.submit[0].wall_time_min == 30
    assert "backfill" in decision.submit[0].reason


def test_withdraws_after_queue_wait_and_idle_timeout() -> None:
    lim = Limits(max_nodes=4, max_queued=1, max_queue_wait_min=30, idle_timeout_min=5)
    stale = Allocation(1, 2, 30, running=False, submitted_at_min=0.0)
    snap = Snapshot(31.0, (JobShape(1, 1, 10, 4),), (stale,))
    decision = POLICY.decide(snap, lim)
    assert [w.id for w in decision.withdraw] == [1]
    assert len(decision.submit) == 1  # replaced by a fresh request
    running = Allocation(2, 2, 30, running=True, submitted_at_min=35.0)
    idle = Snapshot(40.0, (), (running,), idle_since_min=34.0)
    assert [w.id for w in POLICY.decide(idle, lim).withdraw] == [2]
    not_yet = Snapshot(36.0, (), idle.allocations, idle_since_min=34.0)
    assert POLICY.decide(not_yet, lim) == Decision()


def test_limits_are_validated_and_policies_are_registered() -> None:
    import pytest

    with pytest.raises(ValueError, match="min_nodes"):
        Limits(min_nodes=4, max_nodes=2)
    with pytest.raises(LookupError, match="known: backlog"):
        get_policy("nope")
