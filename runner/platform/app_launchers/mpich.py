"""MPICH's Hydra ``mpiexec`` (also Intel MPI and the ``mpich`` wheel on PyPI)."""

from __future__ import annotations

import sys
from pathlib import Path

from runner.platform.app_launchers.base import AppLauncher, LaunchSpec, register


@register("mpich")
class MPICHLauncher(AppLauncher):
    default_executable = "mpiexec"

    @classmethod
    def find_default(cls) -> str:
        # The wheel installs mpiexec next to the interpreter; prefer it to a system MPI
        # that mpi4py was not built against.
        beside = Path(sys.executable).parent / "mpiexec"
        return str(beside) if beside.exists() else super().find_default()

    def command(self, spec: LaunchSpec) -> list[str]:
        if spec.rank_counts is None:
            layout = ["-ppn", str(spec.ranks_per_node), "-hosts", ",".join(spec.hosts)]
        else:
            layout = ["-hosts", ",".join(f"{h}:{n}" for h, n in zip(spec.hosts, spec.counts(), strict=True))]
        cmd = [self.executable, "-n", str(spec.num_ranks), *layout]
        for key, value in spec.env.items():
            cmd += ["-genv", key, value]
        return [*cmd, *self.extra_args, *spec.argv]
