"""What a pipeline run is asked to do (``tolu ci integration`` options)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass
class Options:
    server: str = "process"  # process | container | http(s)://URL
    scheduler: str = "local"  # local | slurm
    artifacts: Path = Path("artifacts")
    run_id: str = ""
    deadline_sec: float = 600.0
    faults: tuple[str, ...] = ()
    #: reuse this venv (created when missing) instead of a fresh one per run; tolu is reinstalled.
    venv: Path | None = None
    database_url: str | None = None
    keep_work: bool = False
    #: make the venv see this interpreter's installed packages instead of installing tolu's
    #: dependencies (tolu itself still comes from the fresh wheel): fast, for planted-fault tests.
    shared_deps: bool = False
