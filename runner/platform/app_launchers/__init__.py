"""App launchers: how a job's ranks start. ``get("mpich")(executable=..., extra_args=...)``."""

from runner.platform.app_launchers import local, mpich, openmpi, srun  # noqa: F401  (register)
from runner.platform.app_launchers.base import (
    APP_LAUNCHERS,
    AppLauncher,
    LaunchSpec,
    UnsupportedJob,
    get,
    names,
    register,
)

__all__ = ["APP_LAUNCHERS", "AppLauncher", "LaunchSpec", "UnsupportedJob", "get", "names", "register"]
