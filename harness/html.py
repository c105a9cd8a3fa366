"""report.html of a test run: one self-contained page (inline CSS, plots as base64 PNG) a
newcomer can read, drawn from ``harness/templates/run.html.j2``.

Order: what ran where, the verdict, failures first (with their logs' tails), log
errors, skips with reasons, per-test timings, then the job plots of tests that ran jobs.
This module picks and prepares what the page shows; the template lays it out.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness import plots, templates

MIN_TESTS_FOR_PLOT = 5
MAX_TESTS_WITH_JOB_PLOTS = 10
CARDS = ("total", "passed", "failed", "error", "skipped", "xfailed", "xpassed")


@dataclass(frozen=True)
class Verdict:
    kind: str  # ok | warn | bad: the colour
    text: str


def _when(iso: str) -> str:
    return iso[:19].replace("T", " ") + " UTC" if len(iso) >= 19 else iso


def verdict(report: Mapping[str, Any]) -> Verdict:
    s = report["summary"]
    bad = s["failed"] + s["error"]
    missing = report["required"]["missing"]
    if bad or missing or report["exitstatus"] not in (0, 5):
        text = f"FAILED: {bad} failed/error"
        text += f"; required but missing: {', '.join(missing)}" if missing else ""
        return Verdict("bad", text)
    if report["flagged"]:
        unexpected = report["log_errors"]["unexpected"]
        return Verdict("warn", f"PASSED, but flagged: {unexpected} unexpected ERROR log lines")
    return Verdict("ok", "PASSED")


def _job_info(test: Mapping[str, Any]) -> Mapping[str, Any]:
    return (test.get("evidence") or {}).get("jobs") or {}


def _job_plot_order(test: Mapping[str, Any]) -> tuple[int, int]:
    """Failed tests first, then the ones that ran the most jobs."""
    failed = test["outcome"] in ("failed", "error")
    return (0 if failed else 1, -int(_job_info(test).get("count") or 0))


def _job_sections(report: Mapping[str, Any], run_dir: Path) -> list[dict[str, Any]]:
    with_jobs = [t for t in report["tests"] if _job_info(t).get("count") and _job_info(t).get("file")]
    # Plots cost about a second each: draw them for the tests a reader looks at first.
    plotted = {t["nodeid"] for t in sorted(with_jobs, key=_job_plot_order)[:MAX_TESTS_WITH_JOB_PLOTS]}
    sections = []
    for test in with_jobs:
        evidence = test["evidence"]
        info = evidence["jobs"]
        try:
            jobs = json.loads((run_dir / evidence["dir"] / info["file"]).read_text())
        except (OSError, ValueError, KeyError):
            continue
        draw = test["nodeid"] in plotted
        sections.append(
            {
                "test": test,
                "count": info["count"],
                "states": ", ".join(f"{n} {s}" for s, n in sorted(info["states"].items())),
                "file": f"{evidence['dir']}/{info['file']}",
                "batch_jobs": evidence.get("batch_jobs") or [],
                "timeline": plots.job_timeline(jobs) if draw else None,
                "throughput": plots.throughput(jobs) if draw else None,
            }
        )
    return sections


def render(report: Mapping[str, Any], run_dir: Path) -> str:
    tests = report["tests"]
    timings = sorted(tests, key=lambda t: t["duration"], reverse=True)
    summary = report["summary"]
    return templates.render(
        "run.html.j2",
        report=report,
        start=_when(report["start"]),
        end=_when(report["end"]),
        verdict=verdict(report),
        cards=[(k, summary[k]) for k in CARDS if summary[k] or k == "total"],
        environment=[
            (k, ", ".join(map(str, v)) if isinstance(v, list) else v)
            for k, v in report["environment"].items()
        ],
        failures=[t for t in tests if t["outcome"] in ("failed", "error", "xpassed")],
        skips=[t for t in tests if t["outcome"] in ("skipped", "xfailed")],
        timings=timings,
        # A plot of one or two bars says nothing the table does not (and matplotlib costs seconds).
        durations_figure=plots.durations(timings) if len(timings) >= MIN_TESTS_FOR_PLOT else None,
        jobs=_job_sections(report, run_dir),
    )
