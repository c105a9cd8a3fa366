"""Step 11: every staged-out file exists at its destination with the right bytes."""

from __future__ import annotations

from typing import TYPE_CHECKING

from harness.pipeline.results import Finding
from harness.pipeline.step import StepFailed

if TYPE_CHECKING:
    from harness.pipeline.context import Run


def check(run: Run) -> str:
    problems = []
    for job_id, (dest, expected) in sorted(run.stage_out.items()):
        if not dest.exists():
            problems.append(f"job {job_id}: staged-out file {dest} does not exist")
        elif dest.read_text() != expected:
            problems.append(
                f"job {job_id}: {dest} has the wrong content "
                f"({dest.stat().st_size} bytes, expected {len(expected)})"
            )
    if problems:
        run.result.findings += [Finding("transfer", p) for p in problems]
        raise StepFailed(
            f"{len(problems)} of {len(run.stage_out)} staged-out files wrong:\n" + "\n".join(problems)
        )
    return f"{len(run.stage_out)} staged-out files present with the right content"
