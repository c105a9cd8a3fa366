"""The task every benchmark job (and every baseline) runs: one spelling, one argv."""

from __future__ import annotations

import shutil
import sys
from dataclasses import dataclass


class TaskError(ValueError):
    """A ``--task`` value tolu bench does not know."""


@dataclass(frozen=True)
class Task:
    #: as given on the command line: ``true``, ``sleep:0.1``, ``python-noop``
    spec: str
    argv: tuple[str, ...]
    #: how long the task itself works, in seconds: 0 for true; None where its start-up is
    #: most of it and varies by machine (python-noop: an interpreter's start).
    work_s: float | None

    @property
    def app_name(self) -> str:
        return "bench_" + "".join(c if c.isalnum() else "_" for c in self.spec)


def parse(spec: str) -> Task:
    """``true`` | ``sleep:SECONDS`` | ``python-noop`` (a Python interpreter that does nothing)."""
    spec = spec.strip()
    if spec == "true":
        return Task(spec, (shutil.which("true") or "/bin/true",), 0.0)
    if spec == "python-noop":
        return Task(spec, (sys.executable, "-c", "pass"), None)
    if spec.startswith("sleep:"):
        try:
            seconds = float(spec.split(":", 1)[1])
        except ValueError:
            raise TaskError(f"--task {spec!r}: SECONDS must be a number, e.g. sleep:0.1") from None
        if seconds < 0:
            raise TaskError(f"--task {spec!r}: SECONDS must be >= 0")
        return Task(spec, (shutil.which("sleep") or "/bin/sleep", f"{seconds:g}"), seconds)
    raise TaskError(f"--task {spec!r}: expected true, sleep:SECONDS or python-noop")
