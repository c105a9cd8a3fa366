"""One step of the pipeline: a named action, run with its duration printed and recorded."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from harness.pipeline.results import StepResult

if TYPE_CHECKING:
    from harness.pipeline.context import Run

STEPS_IN_ALL = 12
#: lines of a step's detail printed under its result line (report.json keeps them all)
DETAIL_LINES = 40


class StepFailed(Exception):
    """A step did not do what it should; the message says what failed."""


@dataclass(frozen=True)
class Step:
    number: int
    name: str
    #: does the step's work; returns one line (or more) about what it did, raises StepFailed
    action: Callable[[Run], str]

    def __call__(self, run: Run) -> StepResult:
        """Run the step, print its start and result, record the result in ``run.result``."""
        tag = f"[{self.number:2d}/{STEPS_IN_ALL}]"
        run.print(f"{tag} {self.name} ...")
        started = time.monotonic()
        try:
            detail = self.action(run) or ""
            ok = True
        except StepFailed as exc:
            detail, ok = str(exc), False
        except Exception as exc:  # a step's own bug or an unexpected error: report it, do not hide it
            detail, ok = f"{type(exc).__name__}: {exc}", False
        seconds = time.monotonic() - started
        result = StepResult(self.number, self.name, ok, round(seconds, 2), detail)
        run.result.steps.append(result)
        first, *rest = detail.splitlines() or [""]
        status = "ok" if ok else "FAILED"
        run.print(f"{tag} {self.name}: {status} ({seconds:.1f} s){' - ' + first if first else ''}")
        for line in rest[:DETAIL_LINES]:
            run.print(f"        {line}")
        if not ok and not run.result.failed_step:
            run.result.failed_step = f"step {self.number} ({self.name}): {first}"
        return result
