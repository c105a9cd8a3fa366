"""Which GPUs a job sees: the allocation's ids, the variable that hands them over, none for CPU jobs.

An allocation names the GPUs it holds in a visibility variable (Slurm sets
``CUDA_VISIBLE_DEVICES`` on NVIDIA nodes, ``ROCR_VISIBLE_DEVICES`` on AMD ones,
``ZE_AFFINITY_MASK`` on Intel ones). Those ids are what the launcher hands out:
under ``CUDA_VISIBLE_DEVICES=2,3`` a one-GPU job gets ``2`` or ``3``, never ``0``,
which belongs to someone else. A child's variable replaces the parent's (it is not
read relative to it), so the ids are passed on as the allocation spelled them,
UUIDs and MIG names included.

A job that asks for no GPU gets every runtime's "no device" value, so it cannot
pick up the GPU a neighbour holds (``launcher.hide_gpus: false`` turns this off).
Level Zero has no such value for ``ZE_AFFINITY_MASK`` (empty means all), so for
oneAPI the SYCL selector does the hiding.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

Env = Mapping[str, str]

#: variables through which an allocation lists its GPUs, in the order they are read.
VISIBILITY_VARIABLES = (
    "CUDA_VISIBLE_DEVICES",
    "ROCR_VISIBLE_DEVICES",
    "HIP_VISIBLE_DEVICES",
    "ZE_AFFINITY_MASK",
)

#: what a job that asks for no GPU gets: no device for CUDA, ROCm (ROCr and HIP) or SYCL.
#: "-1" is an invalid index, and CUDA, ROCr and HIP list only the devices before the
#: first invalid one; an empty value is not used because some tools read it as unset.
NO_GPUS: Mapping[str, str] = {
    "CUDA_VISIBLE_DEVICES": "-1",
    "ROCR_VISIBLE_DEVICES": "-1",
    "HIP_VISIBLE_DEVICES": "-1",
    "ONEAPI_DEVICE_SELECTOR": "*:cpu",
}


def parse_ids(value: str) -> list[str]:
    """The ids of a visibility list: ``"2, 3"`` -> ``["2", "3"]``; like CUDA, the list
    ends at the first invalid entry (``"-1"`` -> ``[]``, ``"0,-1,2"`` -> ``["0"]``)."""
    ids: list[str] = []
    for item in value.split(","):
        item = item.strip()
        if not item or item.startswith("-"):
            break
        ids.append(item)
    return ids


@dataclass(frozen=True)
class Visible:
    """The GPUs the allocation lists, and the variable it lists them in."""

    variable: str
    ids: tuple[str, ...]


def visible(env: Env) -> Visible | None:
    """The allocation's own GPU list (the first visibility variable that is set), if any."""
    for name in VISIBILITY_VARIABLES:
        value = env.get(name)
        if value is not None:
            return Visible(name, tuple(parse_ids(value)))
    return None


def device_count() -> int:
    """NVIDIA GPUs this node has, from their device files (the allocation named none)."""
    return len(glob.glob("/dev/nvidia[0-9]*"))


def default_variable(env: Env) -> str:
    """The variable that hands a job its GPUs when the site names none: the one the
    allocation used, else ROCr's on an AMD-only node, else CUDA's."""
    seen = visible(env)
    if seen is not None:
        return seen.variable
    if os.path.exists("/dev/kfd") and not device_count():
        return "ROCR_VISIBLE_DEVICES"
    return "CUDA_VISIBLE_DEVICES"


@dataclass(frozen=True)
class GpuEnv:
    """How a job is told its GPUs: ``variable=ids`` for a GPU job, every runtime's
    "none" for a job without (when ``hide``)."""

    variable: str = "CUDA_VISIBLE_DEVICES"
    hide: bool = True

    def for_job(self, ids: Sequence[str]) -> dict[str, str]:
        if ids:
            return {self.variable: ",".join(ids)}
        return dict(NO_GPUS) if self.hide else {}


#: CUDA_VISIBLE_DEVICES for GPU jobs, "none" for the others.
DEFAULT_GPU_ENV = GpuEnv()
