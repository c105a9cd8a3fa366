"""IBM Spectrum LSF: ``bsub < script`` / ``bjobs -o ... -json`` / ``bkill``."""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from runner.platform.schedulers import register_scheduler
from runner.platform.schedulers.base import (
    BatchScheduler,
    CommandResult,
    SchedulerStatus,
    json_object,
)
from runner.states import BatchJobState

log = logging.getLogger("tolu.scheduler.lsf")

B = BatchJobState
#: bjobs STAT words.
LSF_STATES: dict[str, BatchJobState] = {
    "PEND": B.QUEUED,
    "PROV": B.QUEUED,  # resources being provisioned
    "PSUSP": B.QUEUED,  # suspended while pending
    "WAIT": B.QUEUED,  # chunk job member waiting
    "RUN": B.RUNNING,
    "USUSP": B.RUNNING,
    "SSUSP": B.RUNNING,
    "DONE": B.FINISHED,
    "EXIT": B.FAILED,
    "UNKWN": B.UNKNOWN,  # LSF itself lost contact with the host
    "ZOMBI": B.UNKNOWN,
}

FIELDS = "jobid stat exit_code start_time finish_time exit_reason"
_SUBMITTED = re.compile(r"Job <(\d+)> is submitted")


def parse_lsf_time(text: str | None, *, now: datetime | None = None) -> datetime | None:
    """bjobs stamps like ``Nov 22 18:38`` (maybe ``... L``/``E``; no year: this year) as UTC."""
    if not text or text.strip() in ("", "-"):
        return None
    words = text.split()
    if words and words[-1] in ("L", "E", "A"):
        words = words[:-1]
    year = (now or datetime.now()).year
    for fmt in ("%b %d %H:%M:%S %Y", "%b %d %H:%M %Y"):
        try:
            return datetime.strptime(f"{' '.join(words)} {year}", fmt).astimezone(UTC)
        except ValueError:
            continue
    return None


@register_scheduler("lsf")
class LSF(BatchScheduler):
    template_file = "lsf.sh.tmpl"
    job_id_shell = "${LSB_JOBID}"
    state_table = LSF_STATES
    directive_prefix = "#BSUB"
    header = (
        ("job_name", "-J"),
        ("nodes", "-nnodes"),
        ("wall_time", "-W"),
        ("output", "-o"),
        ("project", "-P"),
        ("queue", "-q"),
    )
    option_flag = "-"
    output_name = "batchjob-{id}.%J.out"

    def wall_time(self, minutes: float) -> str:
        return str(max(1, round(minutes)))

    def submit_command(self, script: Path) -> list[str]:
        return ["bsub"]

    def submit_input(self, script: Path) -> str | None:
        # bsub reads #BSUB directives only from a script given on stdin.
        return script.read_text()

    def parse_submit_output(self, stdout: str) -> str:
        match = _SUBMITTED.search(stdout)
        if not match:
            raise ValueError("no 'Job <id> is submitted' line")
        return match.group(1)

    def status_command(self, ids: Sequence[str]) -> list[str]:
        return ["bjobs", "-o", FIELDS, "-json", *ids]

    def status_ok(self, result: CommandResult) -> bool:
        # bjobs exits 255 when some ids are unknown but still answers in JSON for all.
        return result.stdout.lstrip().startswith("{") or result.returncode == 0

    def parse_status_output(self, result: CommandResult, ids: Sequence[str]) -> dict[str, SchedulerStatus]:
        if not result.stdout.strip():
            return {}
        data = json_object(result.stdout, log, "lsf: bjobs JSON", "treating the answer as empty")
        if data is None:
            return {}
        statuses: dict[str, SchedulerStatus] = {}
        for record in data.get("RECORDS") or []:
            if not isinstance(record, dict) or record.get("ERROR") or not record.get("JOBID"):
                continue  # "Job <n> is not found": left the queue, resolved by the base
            job_id = str(record["JOBID"])
            native = str(record.get("STAT", ""))
            code_text = str(record.get("EXIT_CODE", "")).strip()
            state = self.map_state(native)
            statuses[job_id] = SchedulerStatus(
                job_id,
                state,
                native_state=native,
                start_time=parse_lsf_time(record.get("START_TIME")),
                end_time=(parse_lsf_time(record.get("FINISH_TIME"))
                          if state in (B.FINISHED, B.FAILED) else None),
                exit_code=int(code_text) if code_text.isdigit() else (0 if native == "DONE" else None),
                reason=str(record.get("EXIT_REASON", "")).strip(),
            )
        return statuses

    def cancel_command(self, scheduler_id: str) -> list[str]:
        return ["bkill", scheduler_id]
