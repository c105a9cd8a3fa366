"""Which job runs on which node: packing, CPUs, GPUs. Pure logic, no I/O.

A single-node job takes ``1 / node_packing_count`` of one node, ``ranks_per_node x
threads_per_rank`` of its CPUs and ``ranks_per_node x gpus_per_rank`` of its GPUs
(particular ids of the node's ``gpu_ids``, handed to the job in the site's visibility
variable; a job without GPUs is told it has none, see runner/platform/gpus.py). A multi-node job
takes whole, completely free nodes. A node is never over-committed on any of the
three; a job that could not fit even an empty allocation is reported by
``never_fits`` with a reason, so the launcher can fail it instead of waiting forever.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from functools import cache

from runner.models import Job
from runner.platform.gpus import DEFAULT_GPU_ENV, GpuEnv
from runner.platform.nodes import Node


#: not frozen, as every value made per job: read-only all the same (docs/performance.md,
#: "Values made per job, no longer frozen")
@dataclass(slots=True)
class JobRequest:
    """The resources one job asks for."""

    job_id: int
    num_nodes: int = 1
    ranks_per_node: int = 1
    threads_per_rank: int = 1
    gpus_per_rank: int = 0
    node_packing_count: int = 1

    @classmethod
    def from_job(cls, job: Job) -> JobRequest:
        return cls(
            job_id=job.id,
            num_nodes=job.num_nodes,
            ranks_per_node=job.ranks_per_node,
            threads_per_rank=job.threads_per_rank,
            gpus_per_rank=job.gpus_per_rank,
            node_packing_count=job.node_packing_count,
        )

    @property
    def cpus_per_node(self) -> int:
        return self.ranks_per_node * self.threads_per_rank

    @property
    def gpus_per_node(self) -> int:
        return self.ranks_per_node * self.gpus_per_rank

    @property
    def parts(self) -> int:
        """Each of its nodes holds this many such jobs: it takes 1 / parts of each."""
        return 1 if self.num_nodes > 1 else self.node_packing_count

    @property
    def share(self) -> Fraction:
        """The fraction of each of its nodes the job occupies."""
        return _share(self.parts)


@cache
def _share(parts: int) -> Fraction:
    return Fraction(1, parts)


#: not frozen, as every value made per job: read-only all the same (docs/performance.md,
#: "Values made per job, no longer frozen")
@dataclass(slots=True)
class Assignment:
    """Where a job runs: its hosts (in rank order), and per host what it holds."""

    job_id: int
    hosts: tuple[str, ...]
    cpus: tuple[int, ...]
    gpu_ids: tuple[tuple[str, ...], ...]
    share: Fraction
    gpu_env: GpuEnv = DEFAULT_GPU_ENV

    @property
    def num_nodes(self) -> int:
        return len(self.hosts)

    def env(self) -> dict[str, str]:
        """Environment telling the job which GPUs are its own, or that it has none.

        A multi-node job holds whole nodes, whose ids are the same on every host
        (the allocation's list is read once, on the head node).
        """
        return self.gpu_env.for_job(self.gpu_ids[0] if self.gpu_ids else ())


@dataclass
class _NodeState:
    node: Node
    #: the part of the node in use, exactly: ``used_num / used_den``, a sum of
    #: 1 / parts. Integers, not Fractions: a Fraction's add and compare cost 3-5 µs
    #: each, several times per job in a coordinator that places every job of its node.
    used_num: int = 0
    used_den: int = 1
    cpus_used: int = 0
    #: indices into ``node.gpu_ids``, lowest first
    free_gpus: list[int] = field(default_factory=list)
    jobs: set[int] = field(default_factory=set)

    @property
    def idle(self) -> bool:
        return not self.jobs

    @property
    def used(self) -> Fraction:
        return Fraction(self.used_num, self.used_den)

    def busier_than(self, other: _NodeState) -> bool:
        return self.used_num * other.used_den > other.used_num * self.used_den

    def fits(self, req: JobRequest) -> bool:
        parts = req.parts
        return (
            # used + 1/parts <= 1
            self.used_num * parts + self.used_den <= self.used_den * parts
            and self.cpus_used + req.cpus_per_node <= self.node.cpus
            and len(self.free_gpus) >= req.gpus_per_node
        )

    def take(self, parts: int) -> None:
        den = self.used_den
        if den % parts:
            grown = den * parts // math.gcd(den, parts)
            self.used_num *= grown // den
            self.used_den = den = grown
        self.used_num += den // parts

    def give(self, parts: int) -> None:
        # every job still here took its part since the last reset: parts divides used_den
        self.used_num -= self.used_den // parts
        if not self.used_num:
            self.used_den = 1


class AllocationError(RuntimeError):
    """A caller bug: freeing a job that holds nothing, or assigning one twice."""


class NodeManager:
    """Tracks what every node of the allocation has free and places jobs on them."""

    def __init__(self, nodes: Sequence[Node], gpu_env: GpuEnv | None = None) -> None:
        if not nodes:
            raise ValueError("a node manager needs at least one node")
        names = [n.hostname for n in nodes]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate host names in {names}")
        self.nodes = list(nodes)
        self.gpu_env = gpu_env or DEFAULT_GPU_ENV
        self._states = [_NodeState(n, free_gpus=list(range(n.gpus))) for n in nodes]
        #: job -> its assignment, the indices of its nodes, and per node its GPU indices
        self._assignments: dict[int, tuple[Assignment, list[int], list[list[int]]]] = {}

    # ------------------------------------------------------------ questions

    def never_fits(self, req: JobRequest) -> str | None:
        """Why ``req`` could not run even on the empty allocation, or None if it could."""
        if req.num_nodes > len(self.nodes):
            return f"needs {req.num_nodes} nodes, the allocation has {len(self.nodes)}"
        capable = [
            n for n in self.nodes if n.cpus >= req.cpus_per_node and n.gpus >= req.gpus_per_node
        ]
        if len(capable) >= req.num_nodes:
            return None
        biggest = max(self.nodes, key=lambda n: (n.cpus, n.gpus))
        return (
            f"needs {req.cpus_per_node} CPUs ({req.ranks_per_node} ranks x {req.threads_per_rank} "
            f"threads) and {req.gpus_per_node} GPUs on each of {req.num_nodes} node(s); "
            f"the largest node has {biggest.cpus} CPUs and {biggest.gpus} GPUs "
            f"(raise launcher.node.cpus/gpus in settings.yml to oversubscribe)"
        )

    @property
    def running(self) -> int:
        return len(self._assignments)

    def holds(self, job_id: int) -> bool:
        return job_id in self._assignments

    def idle_nodes(self) -> int:
        return sum(1 for s in self._states if s.idle)

    def free_node_equivalents(self) -> float:
        """Free capacity in nodes (a half-packed node counts 0.5): AcquireSpec's aggregate."""
        return float(sum((1 - s.used for s in self._states), Fraction(0)))

    def utilization(self) -> float:
        return float(sum((s.used for s in self._states), Fraction(0))) / len(self._states)

    # ------------------------------------------------------------ placing

    def assign(self, req: JobRequest) -> Assignment | None:
        """Place ``req`` on free resources now, or return None when it must wait."""
        if req.job_id in self._assignments:
            raise AllocationError(f"job {req.job_id} is already assigned")
        if req.num_nodes == 1:
            chosen = self._pick_packed(req)
        else:
            whole = [i for i, s in enumerate(self._states) if s.idle and s.fits(req)]
            chosen = whole[: req.num_nodes] if len(whole) >= req.num_nodes else None
        if chosen is None:
            return None
        gpu_ids: list[tuple[str, ...]] = []
        cpus: list[int] = []
        taken: list[list[int]] = []
        for i in chosen:
            st = self._states[i]
            take = st.free_gpus[: req.gpus_per_node]
            del st.free_gpus[: req.gpus_per_node]
            taken.append(take)
            gpu_ids.append(tuple(st.node.gpu_ids[g] for g in take))
            st.take(req.parts)
            st.cpus_used += req.cpus_per_node
            st.jobs.add(req.job_id)
            cpus.append(req.cpus_per_node)
        a = Assignment(
            job_id=req.job_id,
            hosts=tuple(self._states[i].node.hostname for i in chosen),
            cpus=tuple(cpus),
            gpu_ids=tuple(gpu_ids),
            share=req.share,
            gpu_env=self.gpu_env,
        )
        self._assignments[req.job_id] = (a, list(chosen), taken)
        return a

    def _pick_packed(self, req: JobRequest) -> list[int] | None:
        # Best fit: the busiest node that still has room, so whole nodes stay free
        # for multi-node jobs.
        best: int | None = None
        for i, s in enumerate(self._states):
            if s.fits(req) and (best is None or s.busier_than(self._states[best])):
                best = i
        return None if best is None else [best]

    def free(self, job_id: int) -> Assignment:
        """Give back everything ``job_id`` holds."""
        try:
            a, idx, taken = self._assignments.pop(job_id)
        except KeyError:
            raise AllocationError(f"job {job_id} holds no resources") from None
        for i, gpus in zip(idx, taken, strict=True):
            st = self._states[i]
            st.give(a.share.denominator)
            st.cpus_used -= a.cpus[0]
            st.free_gpus.extend(gpus)
            st.free_gpus.sort()
            st.jobs.discard(job_id)
        return a

    def transfer(self, from_id: int, to_id: int) -> Assignment:
        """Hand everything ``from_id`` holds to ``to_id`` (a job started in its slot as it ended)."""
        try:
            a, idx, taken = self._assignments.pop(from_id)
        except KeyError:
            raise AllocationError(f"job {from_id} holds no resources") from None
        if to_id in self._assignments:
            raise AllocationError(f"job {to_id} is already assigned")
        b = Assignment(to_id, a.hosts, a.cpus, a.gpu_ids, a.share, a.gpu_env)
        for i in idx:
            jobs = self._states[i].jobs
            jobs.discard(from_id)
            jobs.add(to_id)
        self._assignments[to_id] = (b, idx, taken)
        return b

    def assignments(self) -> Iterable[Assignment]:
        return (entry[0] for entry in self._assignments.values())
