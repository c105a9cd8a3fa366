"""Node discovery: which nodes the launcher's allocation holds, and what each offers.

Each source of node names is one small class in ``NODE_DISCOVERY``, a
``runner.registry.Registry`` (``@register("slurm")``), like ReFrame's backends.
``discover(settings)`` picks the class named in ``launcher.node_discovery`` or, for
``auto``, the first whose ``applies()`` is true.
CPU and GPU counts come from the site settings (``launcher.node``) or are detected
on the node the launcher runs on (allocations are homogeneous in practice).
"""

from __future__ import annotations

import os
import re
import socket
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from runner.platform import gpus as gpu_vis
from runner.platform.settings import LauncherSettings
from runner.registry import Registry, UnknownName

Env = Mapping[str, str]


@dataclass(frozen=True)
class Node:
    """One compute node: its host name, how many CPUs jobs may use, and its GPUs.

    ``gpu_ids`` are the ids jobs are given (the allocation's own list, e.g.
    ``("2", "3")`` under ``CUDA_VISIBLE_DEVICES=2,3``); left out, ``0 .. gpus-1``.
    """

    hostname: str
    cpus: int
    gpus: int = 0
    gpu_ids: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.gpu_ids:
            object.__setattr__(self, "gpu_ids", tuple(str(i) for i in range(self.gpus)))
        elif len(self.gpu_ids) != self.gpus:
            raise ValueError(f"{self.hostname}: {self.gpus} GPUs but {len(self.gpu_ids)} ids {self.gpu_ids}")
        if len(set(self.gpu_ids)) != len(self.gpu_ids):
            raise ValueError(f"{self.hostname}: GPU ids repeat: {self.gpu_ids}")


@dataclass(frozen=True)
class HostEntry:
    """A host name as a discovery source lists it, with a slot count when it gives one."""

    hostname: str
    slots: int | None = None


class DiscoveryError(RuntimeError):
    """The configured source of node names cannot be read (missing variable or file)."""


class NodeDiscovery(ABC):
    """One source of the allocation's node names."""

    name: ClassVar[str]

    def __init__(self, env: Env, hostfile: str | None = None) -> None:
        self.env = env
        self.hostfile = hostfile

    @abstractmethod
    def applies(self) -> bool:
        """True when this source describes the current allocation (used by ``auto``)."""

    @abstractmethod
    def hosts(self) -> list[HostEntry]:
        """The allocation's hosts, each once, in the scheduler's order."""


#: ``auto`` tries the sources in the order they register; ``local`` always applies, so it comes last.
NODE_DISCOVERY: Registry[type[NodeDiscovery]] = Registry("node discovery")
register = NODE_DISCOVERY.register
get = NODE_DISCOVERY.get
names = NODE_DISCOVERY.names


# ---------------------------------------------------------------- host list syntax


def _split_top_level(text: str) -> list[str]:
    """Split on commas that are not inside brackets: ``a[1,2],b`` -> ``['a[1,2]', 'b']``."""
    parts: list[str] = []
    depth = 0
    start = 0
    for i, ch in enumerate(text):
        if ch == "[":
            depth += 1
        elif ch == "]":
            depth -= 1
            if depth < 0:
                raise ValueError(f"unbalanced ']' in host list {text!r}")
        elif ch == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    if depth != 0:
        raise ValueError(f"unbalanced '[' in host list {text!r}")
    parts.append(text[start:])
    return [p.strip() for p in parts if p.strip()]


def _expand_range(spec: str, whole: str) -> list[str]:
    out: list[str] = []
    for item in spec.split(","):
        item = item.strip()
        if not item:
            continue
        lo, sep, hi = item.partition("-")
        if not lo.isdigit() or (sep and not hi.isdigit()):
            raise ValueError(f"bad range {item!r} in host list {whole!r}")
        if not sep:
            out.append(lo)
            continue
        width = len(lo) if lo.startswith("0") or len(lo) == len(hi) else 0
        start, stop = int(lo), int(hi)
        if stop < start:
            raise ValueError(f"descending range {item!r} in host list {whole!r}")
        out.extend(str(n).zfill(width) for n in range(start, stop + 1))
    return out


def _expand_one(name: str, whole: str) -> list[str]:
    m = re.search(r"\[([^\[\]]*)\]", name)
    if m is None:
        return [name]
    head, tail = name[: m.start()], name[m.end() :]
    return [head + n + rest for n in _expand_range(m.group(1), whole) for rest in _expand_one(tail, whole)]


def expand_hostlist(text: str) -> list[str]:
    """Expand a Slurm host list: ``nid[001-003,007],login1`` -> 4 names + ``login1``.

    Zero padding follows the range's first number; several bracket groups in one name
    (``r[1-2]n[1-2]``) expand as a product, like ``scontrol show hostnames``.
    """
    names: list[str] = []
    for part in _split_top_level(text.strip()):
        names.extend(_expand_one(part, text))
    return names


def read_hostfile(path: str | Path) -> list[HostEntry]:
    """Read ``host``, ``host:slots`` or ``host slots=N`` lines; ``#`` starts a comment.

    A host listed several times (PBS lists one line per core) counts once, its slots
    summed when the lines give none.
    """
    counts: dict[str, int] = {}
    slots: dict[str, int | None] = {}
    for raw in Path(path).read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        fields = line.split()
        host, _, colon_slots = fields[0].partition(":")
        n: int | None = int(colon_slots) if colon_slots.isdigit() else None
        for extra in fields[1:]:
            key, _, value = extra.partition("=")
            if key in ("slots", "cpus") and value.isdigit():
                n = int(value)
        counts[host] = counts.get(host, 0) + 1
        if n is not None:
            slots[host] = n
        else:
            slots.setdefault(host, None)
    return [HostEntry(h, slots[h]) for h in counts]


def _dedupe(names: list[str]) -> list[HostEntry]:
    return [HostEntry(h) for h in dict.fromkeys(names)]


# ---------------------------------------------------------------- sources


@register("hostfile")
class HostfileDiscovery(NodeDiscovery):
    """An explicit hostfile (``--hostfile`` or ``launcher.hostfile``); slots give CPUs."""

    def applies(self) -> bool:
        return bool(self.hostfile)

    def hosts(self) -> list[HostEntry]:
        if not self.hostfile:
            raise DiscoveryError("node_discovery is 'hostfile' but no hostfile was given")
        if not Path(self.hostfile).is_file():
            raise DiscoveryError(f"hostfile {self.hostfile} does not exist")
        return read_hostfile(self.hostfile)


@register("slurm")
class SlurmDiscovery(NodeDiscovery):
    """``SLURM_JOB_NODELIST`` (or the older ``SLURM_NODELIST``), bracket ranges expanded."""

    def _nodelist(self) -> str | None:
        return self.env.get("SLURM_JOB_NODELIST") or self.env.get("SLURM_NODELIST")

    def applies(self) -> bool:
        return bool(self._nodelist())

    def hosts(self) -> list[HostEntry]:
        nodelist = self._nodelist()
        if not nodelist:
            raise DiscoveryError("SLURM_JOB_NODELIST is not set: not inside a Slurm allocation")
        return _dedupe(expand_hostlist(nodelist))


@register("pbs")
class PBSDiscovery(NodeDiscovery):
    """``PBS_NODEFILE``: one line per core or per node; each host counted once."""

    def applies(self) -> bool:
        return bool(self.env.get("PBS_NODEFILE"))

    def hosts(self) -> list[HostEntry]:
        path = self.env.get("PBS_NODEFILE")
        if not path or not Path(path).is_file():
            raise DiscoveryError(f"PBS_NODEFILE is not set or missing ({path!r})")
        return [HostEntry(e.hostname) for e in read_hostfile(path)]


@register("cobalt")
class CobaltDiscovery(NodeDiscovery):
    """Cobalt: ``COBALT_NODEFILE`` when present, else ``COBALT_PARTNAME`` node ids.

    Cray systems name nodes ``nid`` + the id padded to 5 digits (``1-3,7`` ->
    ``nid00001`` ... ``nid00007``).
    """

    def applies(self) -> bool:
        return bool(self.env.get("COBALT_NODEFILE") or self.env.get("COBALT_PARTNAME"))

    def hosts(self) -> list[HostEntry]:
        nodefile = self.env.get("COBALT_NODEFILE")
        if nodefile and Path(nodefile).is_file():
            return [HostEntry(e.hostname) for e in read_hostfile(nodefile)]
        part = self.env.get("COBALT_PARTNAME")
        if not part:
            raise DiscoveryError("neither COBALT_NODEFILE nor COBALT_PARTNAME is set")
        if not re.fullmatch(r"[0-9,\- ]+", part):
            # Some Cobalt systems name the partition by host names.
            return _dedupe(expand_hostlist(part))
        ids = _expand_range(part, part)
        return _dedupe([f"nid{int(i):05d}" for i in ids])


@register("local")
class LocalDiscovery(NodeDiscovery):
    """The host the launcher runs on, alone (a workstation)."""

    def applies(self) -> bool:
        return True

    def hosts(self) -> list[HostEntry]:
        return [HostEntry(socket.gethostname())]


# ---------------------------------------------------------------- node shape


def detect_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def gpu_ids(settings: LauncherSettings, env: Env) -> tuple[str, ...]:
    """The GPU ids of each node: ``launcher.node.gpu_ids``, else the allocation's visible
    list, else ``0 .. n-1`` for the declared (``launcher.node.gpus``) or detected count.

    Declaring more GPUs than the allocation lists is an error: the extra ids would be
    GPUs that belong to another allocation.
    """
    declared = settings.node.gpus
    if settings.node.gpu_ids:
        ids = tuple(settings.node.gpu_ids)
        source = "launcher.node.gpu_ids"
    else:
        seen = gpu_vis.visible(env)
        if seen is None:
            return tuple(str(i) for i in range(declared or gpu_vis.device_count()))
        ids = seen.ids
        source = f"{seen.variable}={env.get(seen.variable, '')}"
    if declared and declared > len(ids):
        raise DiscoveryError(
            f"launcher.node.gpus is {declared} but the allocation lists {len(ids)} GPU(s) ({source})"
        )
    return ids[:declared] if declared else ids


def source_name(settings: LauncherSettings, env: Env, hostfile: str | None) -> str:
    """The discovery source that ``settings`` (and ``auto``) selects."""
    if settings.node_discovery != "auto":
        if settings.node_discovery not in NODE_DISCOVERY:
            raise UnknownName(NODE_DISCOVERY.kind, settings.node_discovery, ["auto", *names()])
        return settings.node_discovery
    # in the order the sources registered: ``local`` always applies, so it comes last
    for name, source in NODE_DISCOVERY.items():
        if source(env, hostfile).applies():
            return name
    return "local"


def discover(
    settings: LauncherSettings,
    *,
    env: Env | None = None,
    hostfile: str | None = None,
) -> list[Node]:
    """The allocation's nodes, with CPU and GPU counts.

    ``hostfile`` (from ``--hostfile``) wins over ``settings.hostfile``. A hostfile's
    slot counts give the CPUs of its hosts unless ``launcher.node.cpus`` is set.
    """
    env = os.environ if env is None else env
    hostfile = hostfile or settings.hostfile or None
    name = source_name(settings, env, hostfile)
    entries = get(name)(env, hostfile).hosts()
    if not entries:
        raise DiscoveryError(f"node discovery {name!r} found no hosts")
    detected_cpus = detect_cpus()
    ids = gpu_ids(settings, env)
    nodes = []
    for e in entries:
        cpus = settings.node.cpus or e.slots or detected_cpus
        nodes.append(Node(hostname=e.hostname, cpus=cpus, gpus=len(ids), gpu_ids=ids))
    return nodes


def gpu_env(settings: LauncherSettings, env: Env | None = None) -> gpu_vis.GpuEnv:
    """How jobs are told their GPUs (``launcher.gpu_variable``, ``launcher.hide_gpus``)."""
    env = os.environ if env is None else env
    variable = settings.gpu_variable
    if variable == "auto":
        variable = gpu_vis.default_variable(env)
    return gpu_vis.GpuEnv(variable=variable, hide=settings.hide_gpus)
