"""What a pipeline run found: each step's result and the findings of the checks."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class StepResult:
    number: int
    name: str
    ok: bool
    seconds: float
    detail: str = ""


@dataclass
class Finding:
    kind: str  # error-log | unexpected-failure | expected-failure-missing | stuck | batch-failed | ...
    message: str
    where: str = ""


@dataclass
class PipelineResult:
    run_id: str
    ok: bool
    out_dir: Path
    steps: list[StepResult] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    failed_step: str = ""
