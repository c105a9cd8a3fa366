"""No MPI: the job's argv runs as one process on the launcher's host."""

from __future__ import annotations

from runner.platform.app_launchers.base import AppLauncher, LaunchSpec, UnsupportedJob, register


@register("local")
class LocalLauncher(AppLauncher):
    default_executable = ""

    @classmethod
    def find_default(cls) -> str:
        return ""

    def command(self, spec: LaunchSpec) -> list[str]:
        if spec.num_ranks != 1:
            raise UnsupportedJob(
                f"the local launcher starts one process; this job needs {spec.num_ranks} ranks "
                f"on {spec.num_nodes} node(s) (set launcher.mpi_launcher to an MPI launcher)"
            )
        return [*self.extra_args, *spec.argv]
