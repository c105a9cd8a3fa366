"""Node manager: packing, CPUs, GPUs, whole-node multi-node jobs (property-based)."""

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runner.platform.gpus import GpuEnv
from runner.platform.node_manager import AllocationError, JobRequest, NodeManager
from runner.platform.nodes import Node


def three_nodes(cpus: int = 4, gpus: int = 2) -> NodeManager:
    return NodeManager([Node(f"n{i}", cpus, gpus) for i in range(1, 4)])


def test_packing_fills_one_node_before_the_next() -> None:
    nm = three_nodes()
    placed = [nm.assign(JobRequest(i, node_packing_count=4)) for i in range(4)]
    assert {a.hosts for a in placed if a} == {("n1",)}
    assert nm.idle_nodes() == 2
    assert nm.free_node_equivalents() == pytest.approx(2.0)


def test_cpus_limit_packing() -> None:
    nm = three_nodes(cpus=4)
    # packing count allows 8 per node, but each needs 2 CPUs of 4
    hosts = [nm.assign(JobRequest(i, node_packing_count=8, ranks_per_node=2)) for i in range(6)]
    assert [a.hosts[0] for a in hosts if a] == ["n1", "n1", "n2", "n2", "n3", "n3"]
    # every node's 4 CPUs are held by two 2-CPU jobs: even a 1-CPU job must wait
    assert nm.assign(JobRequest(99, node_packing_count=8)) is None


def test_gpus_are_distinct_and_exported() -> None:
    nm = NodeManager([Node("g1", 8, 4)])
    a = nm.assign(JobRequest(1, node_packing_count=4, gpus_per_rank=2))
    b = nm.assign(JobRequest(2, node_packing_count=4, gpus_per_rank=2))
    assert a is not None and b is not None
    assert a.env() == {"CUDA_VISIBLE_DEVICES": "0,1"}
    assert b.env() == {"CUDA_VISIBLE_DEVICES": "2,3"}
    assert nm.assign(JobRequest(3, node_packing_count=4, gpus_per_rank=1)) is None
    nm.free(1)
    c = nm.assign(JobRequest(3, node_packing_count=4, gpus_per_rank=1))
    assert c is not None and c.env() == {"CUDA_VISIBLE_DEVICES": "0"}


def test_gpu_ids_come_from_the_node_and_jobs_without_gpus_see_none() -> None:
    """Under CUDA_VISIBLE_DEVICES=2,3,5,7 the jobs get those ids, never 0 or 1; a job that
    asks for no GPU is told so in every runtime's variable."""
    nm = NodeManager([Node("g1", 8, 4, gpu_ids=("2", "3", "5", "7"))])
    a = nm.assign(JobRequest(1, node_packing_count=4, gpus_per_rank=1))
    b = nm.assign(JobRequest(2, node_packing_count=4, gpus_per_rank=3))
    cpu_only = nm.assign(JobRequest(3, node_packing_count=4))
    assert a is not None and b is not None and cpu_only is not None
    assert a.env() == {"CUDA_VISIBLE_DEVICES": "2"}
    assert b.env() == {"CUDA_VISIBLE_DEVICES": "3,5,7"}
    assert cpu_only.env() == {
        "CUDA_VISIBLE_DEVICES": "-1", "ROCR_VISIBLE_DEVICES": "-1", "HIP_VISIBLE_DEVICES": "-1",
        "ONEAPI_DEVICE_SELECTOR": "*:cpu",
    }
    nm.free(1)
    again = nm.assign(JobRequest(4, node_packing_count=4, gpus_per_rank=1))
    assert again is not None and again.gpu_ids == (("2",),)


def test_gpu_variable_and_hiding_follow_the_site() -> None:
    nm = NodeManager([Node("a1", 4, 2)], GpuEnv(variable="ROCR_VISIBLE_DEVICES", hide=False))
    gpu = nm.assign(JobRequest(1, node_packing_count=2, gpus_per_rank=1))
    cpu = nm.assign(JobRequest(2, node_packing_count=2))
    assert gpu is not None and gpu.env() == {"ROCR_VISIBLE_DEVICES": "0"}
    assert cpu is not None and cpu.env() == {}


def test_shares_of_different_packing_counts_add_up_exactly() -> None:
    """1/2 + 1/3 + 1/6 fill a node to the last part, never a rounding error more or less."""
    nm = NodeManager([Node("n1", 12, 0)])
    for job_id, parts in ((1, 2), (2, 3), (3, 6)):
        assert nm.assign(JobRequest(job_id, node_packing_count=parts)) is not None
    assert nm.free_node_equivalents() == 0
    assert nm.assign(JobRequest(4, node_packing_count=12)) is None  # full
    nm.free(2)  # a third back: two sixths fit in it, and no more
    assert nm.assign(JobRequest(5, node_packing_count=6)) is not None
    assert nm.assign(JobRequest(6, node_packing_count=6)) is not None
    assert nm.assign(JobRequest(7, node_packing_count=1_000)) is None
    for job_id in (1, 3, 5, 6):
        nm.free(job_id)
    assert nm.free_node_equivalents() == 1
    assert nm.assign(JobRequest(8)) is not None  # a whole node again


def test_multi_node_jobs_take_whole_free_nodes() -> None:
    nm = three_nodes()
    assert nm.assign(JobRequest(1, node_packing_count=4)) is not None  # n1 partly used
    big = nm.assign(JobRequest(2, num_nodes=2))
    assert big is not None and big.hosts == ("n2", "n3")
    assert nm.assign(JobRequest(3, num_nodes=2)) is None  # must wait
    nm.free(2)
    again = nm.assign(JobRequest(3, num_nodes=2))
    assert again is not None and again.hosts == ("n2", "n3")


def test_never_fits_reports_the_reason() -> None:
    nm = three_nodes(cpus=4, gpus=2)
    assert nm.never_fits(JobRequest(1, num_nodes=3)) is None
    assert "needs 4 nodes" in (nm.never_fits(JobRequest(1, num_nodes=4)) or "")
    reason = nm.never_fits(JobRequest(1, ranks_per_node=3, threads_per_rank=2))
    assert reason is not None and "6 CPUs" in reason and "4 CPUs" in reason
    assert "GPUs" in (nm.never_fits(JobRequest(1, gpus_per_rank=3)) or "")


def test_freeing_twice_or_assigning_twice_is_a_bug() -> None:
    nm = three_nodes()
    nm.assign(JobRequest(1))
    with pytest.raises(AllocationError):
        nm.assign(JobRequest(1))
    nm.free(1)
    with pytest.raises(AllocationError):
        nm.free(1)


requests = st.builds(
    JobRequest,
    job_id=st.just(0),
    num_nodes=st.integers(1, 4),
    ranks_per_node=st.integers(1, 4),
    threads_per_rank=st.integers(1, 3),
    gpus_per_rank=st.integers(0, 2),
    node_packing_count=st.integers(1, 6),
)


@settings(max_examples=150, deadline=None)
@given(
    shapes=st.lists(st.tuples(st.integers(1, 8), st.integers(0, 4)), min_size=1, max_size=4),
    ops=st.lists(st.tuples(st.booleans(), requests, st.integers(0, 1000)), max_size=60),
)
def test_never_overcommits_and_frees_everything(
    shapes: list[tuple[int, int]], ops: list[tuple[bool, JobRequest, int]]
) -> None:
    node_list = [Node(f"h{i}", c, g) for i, (c, g) in enumerate(shapes)]
    nm = NodeManager(node_list)
    live: list[int] = []
    next_id = 0
    for is_free, req, pick in ops:
        if is_free and live:
            nm.free(live.pop(pick % len(live)))
        else:
            next_id += 1
            req = JobRequest(next_id, req.num_nodes, req.ranks_per_node, req.threads_per_rank,
                             req.gpus_per_rank, req.node_packing_count)
            a = nm.assign(req)
            if a is not None:
                live.append(next_id)
                assert len(a.hosts) == req.num_nodes == len(set(a.hosts))
                assert all(len(g) == req.gpus_per_node for g in a.gpu_ids)
                assert nm.never_fits(req) is None
            elif nm.running == 0:
                # nothing else holds resources, so a refusal means it can never fit
                assert nm.never_fits(req) is not None
        # invariant: no node over-committed on share, CPUs or GPUs; GPU ids disjoint
        by_host: dict[str, list] = {n.hostname: [] for n in node_list}
        for a in nm.assignments():
            for h, g, c in zip(a.hosts, a.gpu_ids, a.cpus, strict=True):
                by_host[h].append((a.share, c, g))
        held_shares = sum((s for h in by_host.values() for s, _, _ in h), Fraction(0))
        assert nm.free_node_equivalents() == pytest.approx(float(len(node_list) - held_shares))
        for n in node_list:
            held = by_host[n.hostname]
            assert sum((s for s, _, _ in held), Fraction(0)) <= 1
            assert sum(c for _, c, _ in held) <= n.cpus
            gpus = [x for _, _, g in held for x in g]
            assert len(gpus) == len(set(gpus)) and set(gpus) <= set(n.gpu_ids)
    for job_id in live:
        nm.free(job_id)
    assert nm.running == 0
    assert nm.idle_nodes() == len(node_list)
    assert nm.free_node_equivalents() == pytest.approx(len(node_list))
    # after freeing everything, every job that fits at all fits again right away
    for n in node_list:
        assert nm.assign(JobRequest(10_000, ranks_per_node=n.cpus, gpus_per_rank=0)) is not None
        nm.free(10_000)
