"""Slurm's ``srun`` (job steps inside the allocation)."""

from __future__ import annotations

from runner.platform.app_launchers.base import AppLauncher, LaunchSpec, register


@register("srun")
class SrunLauncher(AppLauncher):
    default_executable = "srun"

    def command(self, spec: LaunchSpec) -> list[str]:
        cmd = [
            self.executable,
            "--nodes", str(spec.num_nodes),
            "--ntasks", str(spec.num_ranks),
            *(["--ntasks-per-node", str(spec.ranks_per_node)] if spec.rank_counts is None else []),
            # uneven counts only ever mean "one extra rank first", which block placement gives
            "--distribution", "block",
            "--cpus-per-task", str(spec.threads_per_rank),
            "--nodelist", ",".join(spec.hosts),
            # the step's environment is srun's own (process_env), job variables included
            "--export", "ALL",
        ]  # fmt: skip
        if spec.gpus_per_rank:
            cmd += ["--gpus-per-task", str(spec.gpus_per_rank)]
        return [*cmd, *self.extra_args, *spec.argv]
