"""Open MPI's ``mpirun``."""

from __future__ import annotations

from runner.platform.app_launchers.base import AppLauncher, LaunchSpec, register


@register("openmpi")
class OpenMPILauncher(AppLauncher):
    default_executable = "mpirun"

    def command(self, spec: LaunchSpec) -> list[str]:
        cmd = [
            self.executable,
            "-n", str(spec.num_ranks),
            "--map-by", f"ppr:{spec.ranks_per_node}:node:PE={spec.threads_per_rank}",
            "--host", ",".join(f"{h}:{n}" for h, n in zip(spec.hosts, spec.counts(), strict=True)),
        ]  # fmt: skip
        # -x NAME exports the variable from mpirun's own environment (process_env).
        for key in spec.env:
            cmd += ["-x", key]
        return [*cmd, *self.extra_args, *spec.argv]
