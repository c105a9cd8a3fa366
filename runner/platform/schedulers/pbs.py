"""PBS Professional / OpenPBS: ``qsub`` / ``qstat -f -x -F json`` / ``qdel``, ``pbsnodes`` for free nodes.

``qstat -x`` includes finished jobs (state F with ``Exit_status``), so a job leaves
the answer only once the server's history has dropped it; it is then resolved
through the exit-code file like everywhere else.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from runner.platform.schedulers import register_scheduler
from runner.platform.schedulers.base import (
    BackfillWindow,
    BatchScheduler,
    CommandResult,
    SchedulerStatus,
    json_object,
    option_key,
    quote,
)
from runner.states import BatchJobState

log = logging.getLogger("tolu.scheduler.pbs")

B = BatchJobState
#: qstat job_state letters (PBS Pro reference guide, "Job States").
PBS_STATES: dict[str, BatchJobState] = {
    "Q": B.QUEUED,  # queued, eligible to run
    "H": B.QUEUED,  # held
    "W": B.QUEUED,  # waiting for its start time
    "T": B.QUEUED,  # in transit to another server
    "M": B.QUEUED,  # moved to another server
    "B": B.RUNNING,  # array job: at least one subjob started
    "R": B.RUNNING,
    "E": B.RUNNING,  # exiting after having run
    "S": B.RUNNING,  # suspended by the server
    "U": B.RUNNING,  # suspended: workstation busy
    "X": B.FINISHED,  # subjob finished
    "F": B.FINISHED,  # finished (FAILED when Exit_status != 0)
}


def parse_ctime(text: str | None) -> datetime | None:
    """PBS stamps like ``Sun Nov 22 18:38:45 2026`` (server local time) as UTC."""
    if not text:
        return None
    try:
        return datetime.strptime(text.strip(), "%a %b %d %H:%M:%S %Y").astimezone(UTC)
    except ValueError:
        return None


@register_scheduler("pbs")
class PBS(BatchScheduler):
    template_file = "pbs.sh.tmpl"
    job_id_shell = "${PBS_JOBID}"
    state_table = PBS_STATES
    directive_prefix = "#PBS"
    header = (
        ("job_name", "-N"),
        ("nodes", "-l select="),
        ("wall_time", "-l walltime="),
        ("", "-j oe"),
        ("output", "-o"),
        ("project", "-A"),
        ("queue", "-q"),
    )

    def option_directive(self, key: str, value: str) -> str:
        # PBS options are resources: {"filesystems": "home:grand"} -> "-l filesystems=home:grand".
        return f"{self.directive_prefix} -l {quote(f'{option_key(key)}={value}')}"

    def submit_command(self, script: Path) -> list[str]:
        return ["qsub", str(script)]

    def parse_submit_output(self, stdout: str) -> str:
        lines = [line.strip() for line in stdout.strip().splitlines() if line.strip()]
        if not lines or not lines[-1][0].isdigit():
            raise ValueError("qsub printed no job id")
        return lines[-1]

    def status_command(self, ids: Sequence[str]) -> list[str]:
        return ["qstat", "-f", "-x", "-F", "json", *ids]

    def status_ok(self, result: CommandResult) -> bool:
        # Unknown ids make qstat exit non-zero ("Unknown Job Id") but it still answers in
        # JSON for the others; only output that is not JSON at all is a failed query.
        return result.stdout.lstrip().startswith("{") or result.returncode == 0 or (
            "Unknown Job Id" in result.stderr
        )

    def parse_status_output(self, result: CommandResult, ids: Sequence[str]) -> dict[str, SchedulerStatus]:
        if not result.stdout.strip():
            return {}
        data = json_object(result.stdout, log, "pbs: qstat JSON", "treating the answer as empty")
        if data is None:
            return {}
        statuses: dict[str, SchedulerStatus] = {}
        for job_id, job in (data.get("Jobs") or {}).items():
            if not isinstance(job, dict):
                continue
            native = str(job.get("job_state", ""))
            state = self.map_state(native)
            exit_status = job.get("Exit_status")
            code = int(exit_status) if isinstance(exit_status, int | str) and str(exit_status).lstrip(
                "-").isdigit() else None
            if native == "F" and code is not None and code != 0:
                state = B.FAILED
            statuses[job_id] = SchedulerStatus(
                job_id,
                state,
                native_state=native,
                start_time=parse_ctime(job.get("stime")),
                end_time=(parse_ctime(job.get("obittime") or job.get("mtime"))
                          if native in ("F", "X") else None),
                exit_code=code,
                reason=str(job.get("comment", "")),
                num_nodes=_select_nodes(job),
            )
        return statuses

    def cancel_command(self, scheduler_id: str) -> list[str]:
        return ["qdel", scheduler_id]

    def backfill_command(self) -> list[str] | None:
        return ["pbsnodes", "-a", "-F", "json"]

    def parse_backfill_output(self, stdout: str) -> list[BackfillWindow]:
        """Free nodes per queue-less pool; PBS says nothing about how long they stay free."""
        data = json_object(stdout, log, "pbs: pbsnodes JSON", "no backfill windows")
        if data is None:
            return []
        free = sum(
            1 for node in (data.get("nodes") or {}).values()
            if isinstance(node, dict) and str(node.get("state", "")) == "free" and not node.get("jobs")
        )
        return [BackfillWindow(num_nodes=free)] if free else []


def _select_nodes(job: dict[str, Any]) -> int | None:
    resources = job.get("Resource_List") or {}
    nodect = resources.get("nodect")
    return int(nodect) if isinstance(nodect, int | str) and str(nodect).isdigit() else None
