"""MPICH's Hydra ``mpiexec`` (also Intel MPI and the ``mpich`` wheel on PyPI)."""

from __future__ import annotations

import sys
from pathlib import Path

from runner.platform.app_launchers.base import AppLauncher, LaunchSpec, register


@register("mpich")
class MPICHLauncher(AppLauncher):
    default_executable = "mpiexec"
    # Hydra's mpiexec forwards a readable stdin to rank 0's proxy from its event loop:
    # at EOF it writes a "stdin closed" header on the proxy's control socket. When the
    # job ends before mpiexec's loop gets there (a short job on a busy node), the proxy
    # has already exited, and that write kills mpiexec with SIGPIPE (return code -13,
    # the job RUN_ERROR although it succeeded). A stdin that read(0, buf, 0) refuses
    # makes Hydra send the header at once, right after the launch information and
    # before the proxy can start anything: no race. Rank 0 still reads EOF.
    unreadable_stdin = True

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
