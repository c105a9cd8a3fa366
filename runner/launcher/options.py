"""What one launcher run is asked to do, and the error of a launcher that cannot start."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


class LauncherError(RuntimeError):
    """A launcher that cannot start: bad site, not logged in, site not registered."""


@dataclass
class LauncherOptions:
    site_dir: Path
    mode: str = "mpi"
    batch_job_id: int | None = None
    #: the launcher's own wall time (minutes); None: no limit.
    wall_time_min: float | None = None
    hostfile: str | None = None
    #: stop after this many seconds with nothing running and nothing to acquire;
    #: None: the site setting ``launcher.idle_timeout_sec`` (0 there: never).
    max_idle_sec: float | None = None
    tags: dict[str, str] = field(default_factory=dict)
    #: how long to wait for a server that is away, at the start and, holding nothing,
    #: later; None: the site setting ``launcher.server_wait_sec``.
    server_wait_sec: float | None = None
    #: serial mode: the interpreter running each rank.
    python: str = ""
    #: where the launcher leaves ``code<TAB>reason`` when it ends (read by the CLI).
    exit_file: str = ""
