"""Faults the pipeline plants on purpose (``--fault``); each must show up in its report.

A pipeline that stays green on a planted fault is a bug in the pipeline. The steps ask this
module what to plant: an app (``agent-error``), jobs (``job-fails``, ``agent-error``,
``kill-launcher``), a misrouted stage-out (``empty-transfer``), and, while they monitor the
jobs, when to kill the launcher (``kill-launcher``).
"""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.pipeline.launchers import launcher_pids

if TYPE_CHECKING:
    from harness.pipeline.context import Run
    from runner.client import Client

FAULTS: dict[str, str] = {
    "job-fails": "a job whose app exits non-zero although it is not meant to fail",
    "empty-transfer": "a stage-out whose transfer endpoint delivers nothing where it should",
    "agent-error": "an ERROR logged inside the site agent (an app's postprocess hook)",
    "kill-launcher": "the launcher killed with SIGKILL while it runs a job",
}

#: the agent-error fault's app: a postprocess hook that logs an ERROR inside the site agent
NOISY_APP = "noisy"
NOISY_APP_SOURCE = (
    '"""Planted fault: a postprocess hook that logs an ERROR inside the site agent."""\n'
    "import logging\n\nfrom runner.apps import AppDef\n\n\n"
    "class Noisy(AppDef):\n"
    '    name = "noisy"\n'
    '    command_template = "true"\n\n'
    "    def postprocess(self):\n"
    '        logging.getLogger("runner.site").error("planted fault: noisy postprocess hook")\n'
)
#: how long the kill-launcher fault's job runs: long enough to be killed mid-run
LONG_JOB_SEC = 30


@dataclass(frozen=True)
class PlantedJob:
    app: str
    parameters: dict[str, Any] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    retry_limit: int | None = None


def write_apps(run: Run, apps_dir: Path) -> set[str]:
    """Write the planted faults' apps into ``apps_dir``; the names of the apps written."""
    if not run.planted("agent-error"):
        return set()
    (apps_dir / f"{NOISY_APP}.py").write_text(NOISY_APP_SOURCE)
    return {NOISY_APP}


def jobs(run: Run) -> list[PlantedJob]:
    """The planted faults' jobs, tagged ``kind=planted-fault``."""
    planted = {"kind": "planted-fault"}
    out = []
    if run.planted("job-fails"):  # exit code 7, not tagged expect=fail
        out.append(PlantedJob("exitcode", {"code": 7}, planted, retry_limit=0))
    if run.planted("agent-error"):
        out.append(PlantedJob(NOISY_APP, tags=planted))
    if run.planted("kill-launcher"):
        out.append(PlantedJob("sleeper", {"seconds": LONG_JOB_SEC}, {**planted, "long": "1"}))
    return out


def misroutes(run: Run, transfer_index: int) -> bool:
    """Whether the stage-out of the ``transfer_index``-th transfer job goes the wrong way."""
    return run.planted("empty-transfer") and transfer_index == 0


def kill_launcher_when_due(run: Run, client: Client) -> None:
    """SIGKILL to the launcher once the kill-launcher fault's long job runs (once per run)."""
    if not run.planted("kill-launcher") or run.killed_launcher is not None:
        return
    running = client.jobs.filter(site_id=run.site_id, state="RUNNING", tags={"long": "1"})
    pids = launcher_pids(run.site_dir)
    if running and pids:
        os.kill(pids[0], signal.SIGKILL)
        run.killed_launcher = pids[0]
        run.print(
            f"        [{run.elapsed()}] planted fault: SIGKILL to launcher pid {pids[0]} "
            f"while job {running[0].id} runs"
        )
