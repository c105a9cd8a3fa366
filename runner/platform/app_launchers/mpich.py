"""MPICH's Hydra ``mpiexec`` (also Intel MPI and the ``mpich`` wheel on PyPI)."""

from __future__ import annotations

import sys
from pathlib import Path

from runner.platform.app_launchers.base import AppLauncher, LaunchSpec, register


@register("mpich")
class MPICHLauncher(AppLauncher):
    default_executable = "mpiexec"
    # Hydra's mpiexec forwards its stdin to rank 0's proxy: at EOF it writes a "stdin
    # closed" header on the proxy's control socket. When the job ends before mpiexec
    # gets there (a short job on a busy node, two starts at once), the proxy has already
    # exited and the write raises SIGPIPE, which at its default kills mpiexec (return
    # code -13, RUN_ERROR for a job that succeeded). Hydra drops that write's error, so
    # with SIGPIPE ignored mpiexec goes on, reads the exit status and exits 0; and its
    # proxy starts the ranks with SIGPIPE back at the default, so jobs see no
    # difference. (A stdin Hydra cannot read only narrows the window: it then sends
    # the header synchronously, and an error there is fatal.)
    ignore_sigpipe = True

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
