"""Cobalt (ALCF Theta era): ``qsub`` / ``qstat --header`` / ``qdel``.

Cobalt's ``qstat`` forgets a job as soon as it ends, so finished jobs are always
resolved through the exit-code file the batch script writes.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from runner.platform.schedulers import register_scheduler
from runner.platform.schedulers.base import (
    BatchScheduler,
    CommandResult,
    SchedulerStatus,
)
from runner.states import BatchJobState

B = BatchJobState
#: qstat State column words.
COBALT_STATES: dict[str, BatchJobState] = {
    "queued": B.QUEUED,
    "user_hold": B.QUEUED,
    "admin_hold": B.QUEUED,
    "dep_hold": B.QUEUED,
    "maxrun_hold": B.QUEUED,
    "hold": B.QUEUED,
    "starting": B.RUNNING,
    "running": B.RUNNING,
    "exiting": B.RUNNING,
    "killing": B.RUNNING,
    "dep_fail": B.FAILED,
}

HEADER = "JobID:State:Nodes:WallTime:RunTime:Queue"
_ID = re.compile(r"^\d+$")


@register_scheduler("cobalt")
class Cobalt(BatchScheduler):
    template_file = "cobalt.sh.tmpl"
    job_id_shell = "${COBALT_JOBID}"
    state_table = COBALT_STATES
    directive_prefix = "#COBALT"
    header = (
        ("job_name", "--jobname"),
        ("nodes", "-n"),
        ("wall_time", "-t"),
        ("output", "-O"),
        ("project", "-A"),
        ("queue", "-q"),
    )
    output_name = "batchjob-{id}"

    def wall_time(self, minutes: float) -> str:
        return str(max(1, round(minutes)))

    def submit_command(self, script: Path) -> list[str]:
        return ["qsub", str(script)]

    def parse_submit_output(self, stdout: str) -> str:
        for line in reversed(stdout.strip().splitlines()):
            if _ID.match(line.strip()):
                return line.strip()
        raise ValueError("qsub printed no numeric job id")

    def status_command(self, ids: Sequence[str]) -> list[str]:
        return ["qstat", "--header", HEADER, *ids]

    def status_ok(self, result: CommandResult) -> bool:
        # qstat exits 1 with no rows when none of the ids is queued any more.
        return result.returncode == 0 or not result.stderr.strip()

    def parse_status_output(self, result: CommandResult, ids: Sequence[str]) -> dict[str, SchedulerStatus]:
        statuses: dict[str, SchedulerStatus] = {}
        columns: list[str] = []
        for line in result.stdout.splitlines():
            words = line.split()
            if not words or set(line.strip()) <= {"="}:
                continue
            if words[0] == "JobID":
                columns = words
                continue
            if not columns or len(words) != len(columns):
                continue
            row = dict(zip(columns, words, strict=True))
            job_id, native = row["JobID"], row.get("State", "")
            nodes = row.get("Nodes", "")
            statuses[job_id] = SchedulerStatus(
                job_id, self.map_state(native), native_state=native,
                num_nodes=int(nodes) if nodes.isdigit() else None,
            )
        return statuses

    def cancel_command(self, scheduler_id: str) -> list[str]:
        return ["qdel", scheduler_id]
