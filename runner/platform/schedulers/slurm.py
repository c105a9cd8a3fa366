"""Slurm: ``sbatch`` / ``squeue`` / ``scancel``, ``sacct -c`` for jobs that left the queue,
``sinfo`` for idle nodes (backfill windows)."""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from runner.platform.schedulers import register_scheduler
from runner.platform.schedulers.base import (
    BackfillWindow,
    BatchScheduler,
    CommandResult,
    SchedulerStatus,
)
from runner.states import BatchJobState

log = logging.getLogger("tolu.scheduler.slurm")

B = BatchJobState
#: squeue/sacct %T words (https://slurm.schedmd.com/squeue.html#SECTION_JOB-STATE-CODES).
SLURM_STATES: dict[str, BatchJobState] = {
    "PENDING": B.QUEUED,
    "REQUEUED": B.QUEUED,
    "REQUEUE_HOLD": B.QUEUED,
    "REQUEUE_FED": B.QUEUED,
    "RESV_DEL_HOLD": B.QUEUED,
    "SPECIAL_EXIT": B.QUEUED,
    "CONFIGURING": B.RUNNING,
    "RUNNING": B.RUNNING,
    "COMPLETING": B.RUNNING,
    "RESIZING": B.RUNNING,
    "SIGNALING": B.RUNNING,
    "STAGE_OUT": B.RUNNING,
    "SUSPENDED": B.RUNNING,
    "STOPPED": B.RUNNING,
    "COMPLETED": B.FINISHED,
    "CANCELLED": B.FAILED,
    "FAILED": B.FAILED,
    "TIMEOUT": B.FAILED,
    "NODE_FAIL": B.FAILED,
    "PREEMPTED": B.FAILED,
    "BOOT_FAIL": B.FAILED,
    "DEADLINE": B.FAILED,
    "OUT_OF_MEMORY": B.FAILED,
    "REVOKED": B.FAILED,
}

_SQUEUE_FORMAT = "%i|%T|%S|%e|%r|%D"
_JOB_ID = re.compile(r"^(\d+)")


def parse_time(text: str) -> datetime | None:
    """Slurm's local-time ISO stamps (``2026-11-22T18:40:04``) as UTC; N/A, NONE, Unknown -> None."""
    text = text.strip()
    if not text or not text[0].isdigit():
        return None
    try:
        return datetime.fromisoformat(text).astimezone(UTC)
    except ValueError:
        return None


def parse_duration_min(text: str) -> float | None:
    """``infinite``/``UNLIMITED`` -> None; ``[days-]hh:mm:ss``, ``mm:ss``, ``mm`` -> minutes."""
    text = text.strip()
    if not text or text.lower() in ("infinite", "unlimited", "n/a", "none"):
        return None
    days = 0
    if "-" in text:
        day_text, text = text.split("-", 1)
        days = int(day_text)
    parts = [int(p) for p in text.split(":")]
    if len(parts) == 3:
        hours, minutes, seconds = parts
    elif len(parts) == 2:
        hours, (minutes, seconds) = 0, parts
    else:
        hours, minutes, seconds = 0, parts[0], 0
    return days * 1440 + hours * 60 + minutes + seconds / 60


@register_scheduler("slurm")
class Slurm(BatchScheduler):
    template_file = "slurm.sh.tmpl"
    job_id_shell = "${SLURM_JOB_ID}"
    state_table = SLURM_STATES
    directive_prefix = "#SBATCH"
    flag_join = "="
    header = (
        ("job_name", "--job-name"),
        ("nodes", "--nodes"),
        # The launcher packs jobs onto whole nodes: without this Slurm hands out one
        # CPU and `srun -n 2` inside the allocation is refused.
        ("", "--exclusive"),
        ("wall_time", "--time"),
        ("output", "--output"),
        ("project", "--account"),
        ("queue", "--partition"),
    )
    output_name = "batchjob-{id}.%j.out"

    def submit_command(self, script: Path) -> list[str]:
        return ["sbatch", "--parsable", str(script)]

    def parse_submit_output(self, stdout: str) -> str:
        # --parsable prints "<id>" or "<id>;<cluster>"; warnings may come before it.
        for line in reversed(stdout.strip().splitlines()):
            match = _JOB_ID.match(line.strip())
            if match:
                return match.group(1)
        raise ValueError("no numeric job id in sbatch output")

    def status_command(self, ids: Sequence[str]) -> list[str]:
        return ["squeue", "--noheader", "--states=all", f"--jobs={','.join(ids)}",
                f"--format={_SQUEUE_FORMAT}"]

    def status_ok(self, result: CommandResult) -> bool:
        # When none of the ids is known any more squeue exits 1 with "Invalid job id specified":
        # that is an empty answer (the jobs are resolved through sacct), not an outage.
        return result.returncode == 0 or "Invalid job id" in result.stderr

    def parse_status_output(self, result: CommandResult, ids: Sequence[str]) -> dict[str, SchedulerStatus]:
        statuses: dict[str, SchedulerStatus] = {}
        for line in result.stdout.splitlines():
            fields = line.strip().split("|")
            if len(fields) < 6:
                continue
            job_id, native, start, end, reason, nodes = fields[:6]
            state = self.map_state(native)
            final = state in (B.FINISHED, B.FAILED)
            statuses[job_id] = SchedulerStatus(
                job_id,
                state,
                native_state=native,
                start_time=parse_time(start) if state != B.QUEUED else None,
                end_time=parse_time(end) if final else None,
                reason="" if reason in ("None", "") else reason,
                num_nodes=int(nodes) if nodes.isdigit() else None,
            )
        return statuses

    def history(self, ids: Sequence[str]) -> dict[str, SchedulerStatus]:
        """``sacct -c`` reads the job-completion log; works without slurmdbd."""
        for argv in (
            ["sacct", "--noheader", "--parsable2", f"--jobs={','.join(ids)}",
             "--format=JobID,State,ExitCode,Start,End"],
            ["sacct", "-c", "--noheader", "--parsable2", f"--jobs={','.join(ids)}",
             "--format=JobID,State,ExitCode,Start,End"],
        ):
            result = self.run(argv)
            statuses = self.parse_sacct_output(result.stdout, ids) if result.returncode == 0 else {}
            if statuses:
                return statuses
        return {}

    def parse_sacct_output(self, stdout: str, ids: Sequence[str]) -> dict[str, SchedulerStatus]:
        statuses: dict[str, SchedulerStatus] = {}
        for line in stdout.splitlines():
            fields = line.strip().split("|")
            if len(fields) < 5 or fields[0] not in ids:
                continue  # job steps (123.batch) and other jobs
            job_id, native_full, exit_text, start, end = fields[:5]
            native = native_full.split()[0] if native_full.strip() else ""
            state = self.map_state(native)
            code: int | None = None
            if ":" in exit_text and exit_text.split(":")[0].isdigit():
                code = int(exit_text.split(":")[0])
            if state not in (B.FINISHED, B.FAILED):
                continue  # the accounting record is not final yet; ask again next poll
            statuses[job_id] = SchedulerStatus(
                job_id, state, native_state=native, start_time=parse_time(start),
                end_time=parse_time(end), exit_code=code, reason=f"sacct: {native_full.strip()}",
            )
        return statuses

    def cancel_command(self, scheduler_id: str) -> list[str]:
        return ["scancel", scheduler_id]

    def backfill_command(self) -> list[str] | None:
        return ["sinfo", "--noheader", "--format=%P|%a|%l|%F"]

    def parse_backfill_output(self, stdout: str) -> list[BackfillWindow]:
        """One window per available partition with idle nodes (``%F`` is allocated/idle/other/total)."""
        windows = []
        for line in stdout.splitlines():
            fields = line.strip().split("|")
            if len(fields) < 4 or fields[1] != "up":
                continue
            counts = fields[3].split("/")
            if len(counts) != 4 or not counts[1].isdigit() or int(counts[1]) == 0:
                continue
            try:
                limit = parse_duration_min(fields[2])
            except ValueError:
                log.warning("slurm: cannot read partition time limit %r; assuming none", fields[2])
                limit = None
            windows.append(BackfillWindow(num_nodes=int(counts[1]), wall_time_min=limit,
                                          queue=fields[0].rstrip("*")))
        return windows
