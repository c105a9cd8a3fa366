"""A pipeline run's report: report.json (``schema: tolu-integration-report``, its JSON Schema
``report.schema.json`` next to this module) and report.html (``harness/templates/pipeline.html.j2``),
written when the run ends, whatever its outcome."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness import plots, templates
from harness.pipeline.faults import FAULTS

if TYPE_CHECKING:
    from harness.pipeline.context import Run

SCHEMA = "tolu-integration-report"
REPORT_VERSION = 1
SCHEMA_FILE = Path(__file__).with_name("report.schema.json")


@dataclass(frozen=True)
class Plot:
    png: str  # base64
    alt: str


def build(run: Run) -> dict[str, Any]:
    result = run.result
    return {
        "schema": SCHEMA,
        "version": REPORT_VERSION,
        "run_id": run.run_id,
        "ok": all(s.ok for s in result.steps) and not result.findings,
        "start": run.started_at.isoformat(),
        "duration": round(time.monotonic() - run.started, 3),
        "options": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(run.options).items()},
        "server_url": run.url,
        "site_id": run.site_id,
        "failed_step": result.failed_step,
        "steps": [asdict(s) for s in result.steps],
        "findings": [asdict(f) for f in result.findings],
        "planted_faults": {f: FAULTS[f] for f in run.options.faults},
    }


def _plots(jobs: Sequence[Mapping[str, Any]]) -> list[Plot]:
    out = []
    # the figures are a help, not the record: a run without matplotlib still gets its page
    with contextlib.suppress(Exception):
        for draw, alt in ((plots.throughput, "throughput"), (plots.job_timeline, "job state timeline")):
            png = draw(jobs)
            if png:
                out.append(Plot(png, alt))
    return out


def render(report: Mapping[str, Any], jobs: Sequence[Mapping[str, Any]]) -> str:
    """The page for ``report`` (as in report.json) and the jobs of jobs.json."""
    states: dict[str, int] = {}
    for job in jobs:
        states[job["state"]] = states.get(job["state"], 0) + 1
    return templates.render(
        "pipeline.html.j2",
        report=report,
        states=", ".join(f"{k} {v}" for k, v in sorted(states.items())),
        plots=_plots(jobs),
    )


def write(run: Run) -> None:
    out = run.out_dir
    out.mkdir(parents=True, exist_ok=True)
    report = build(run)
    (out / "report.json").write_text(json.dumps(report, indent=1, default=str))
    jobs: list[dict[str, Any]] = []
    with contextlib.suppress(OSError, ValueError):
        jobs = json.loads((out / "jobs.json").read_text())
    (out / "report.html").write_text(render(report, jobs))
