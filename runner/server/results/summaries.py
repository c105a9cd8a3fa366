"""What the server takes out of a published document, once, when it is published.

Lists, the site x area matrix and the benchmark trends read these rows, never the
documents: a run's areas (outcome counts and the reasons of what failed or was
skipped, grouped by reason), a bench run's scenarios and the summary of each figure.

- **tests** (report.json): a test belongs to each of its markers that the report names
  as areas (``areas``, since schema 1.1; ``other`` when it has none of them);
- **bench** (bench.json): one area, ``bench``: each aim met passes, each aim missed or not
  measured fails (what ``tolu bench --check`` decides on);
- **pipeline**: one area, ``pipeline``: each step passes or fails, each finding fails.

The document has been checked against its schema first (``documents.check``), so the
keys the schema requires are there.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from runner.models import RunKind, scenario_key

OUTCOMES = ("passed", "failed", "error", "skipped", "xfailed", "xpassed")
#: the area of a test that has no area marker
OTHER_AREA = "other"
BENCH_AREA = "bench"
PIPELINE_AREA = "pipeline"
#: reason groups kept per area; the rest are counted (``more_reasons``)
MAX_REASONS = 50
#: names kept per reason group, and characters of a reason or a name
NAMES_PER_REASON = 5
REASON_CHARS = 500
NAME_CHARS = 300
TITLE_CHARS = 1000


@dataclass
class Area:
    """The outcomes of one area of a run, and why what did not pass did not."""

    area: str
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(OUTCOMES, 0))
    #: (outcome, reason) -> names, in the order met
    _groups: dict[tuple[str, str], list[str]] = field(default_factory=dict)

    def add(self, outcome: str, name: str, reason: str | None = None) -> None:
        self.counts[outcome] += 1
        if outcome in ("failed", "error", "skipped"):
            key = (outcome, _clip(reason or "(no reason given)", REASON_CHARS))
            self._groups.setdefault(key, []).append(name)

    @property
    def outcome(self) -> str:
        c = self.counts
        if c["failed"] or c["error"]:
            return "failed"
        if c["passed"] or c["xfailed"] or c["xpassed"]:
            return "passed"
        return "skipped"

    def reasons(self) -> list[dict[str, Any]]:
        """Failures and errors first, then skips; the largest groups first within each."""
        rank = {"error": 0, "failed": 1, "skipped": 2}
        groups = sorted(self._groups.items(), key=lambda kv: (rank[kv[0][0]], -len(kv[1])))
        return [
            {
                "outcome": outcome,
                "reason": reason,
                "count": len(names),
                "names": [_clip(n, NAME_CHARS) for n in names[:NAMES_PER_REASON]],
            }
            for (outcome, reason), names in groups[:MAX_REASONS]
        ]

    def row(self) -> dict[str, Any]:
        return {
            "area": self.area,
            "outcome": self.outcome,
            **self.counts,
            "total": sum(self.counts.values()),
            "reasons": self.reasons(),
        }


@dataclass(frozen=True)
class Summary:
    title: str
    ok: bool
    duration_s: float | None
    counts: dict[str, int]
    #: rows of run_areas, run_scenarios and run_figures (without the run's id)
    areas: list[dict[str, Any]]
    scenarios: list[dict[str, Any]] = field(default_factory=list)
    figures: list[dict[str, Any]] = field(default_factory=list)


def summarize(kind: RunKind, document: Mapping[str, Any]) -> Summary:
    if kind == "tests":
        return _tests(document)
    if kind == "bench":
        return _bench(document)
    return _pipeline(document)


def failure_line(longrepr: str | None) -> str | None:
    """One line saying why a test failed: pytest's first ``E`` line, else the last line
    (``file.py:12: AssertionError``)."""
    if not longrepr:
        return None
    lines = [line.rstrip() for line in longrepr.splitlines() if line.strip()]
    for line in lines:
        if line.startswith("E "):
            return line[1:].strip()
    return lines[-1].strip() if lines else None


# ---------------------------------------------------------------- tests


def _tests(doc: Mapping[str, Any]) -> Summary:
    known = set(doc.get("areas") or ())
    areas: dict[str, Area] = {}
    for test in doc["tests"]:
        outcome = test["outcome"]
        reason = test.get("skip_reason") if outcome == "skipped" else failure_line(test.get("longrepr"))
        for name in [m for m in test["markers"] if m in known] or [OTHER_AREA]:
            areas.setdefault(name, Area(name)).add(outcome, test["nodeid"], reason)
    args = doc["environment"].get("args") or []
    return Summary(
        title=_clip(" ".join(["pytest", *args]), TITLE_CHARS),
        ok=doc["exitstatus"] == 0,
        duration_s=float(doc["duration"]),
        counts={k: int(v) for k, v in doc["summary"].items()},
        areas=[areas[name].row() for name in sorted(areas)],
    )


# ---------------------------------------------------------------- bench


def _bench(doc: Mapping[str, Any]) -> Summary:
    area = Area(BENCH_AREA)
    scenarios: list[dict[str, Any]] = []
    figures: list[dict[str, Any]] = []
    command = doc["command"]
    for scenario in doc["scenarios"]:
        name = scenario["name"]
        parameters = scenario.get("parameters") or {}
        scenarios.append(
            {
                "name": name,
                "key": scenario_key(command, name, parameters),
                "command": command,
                "description": scenario.get("description") or "",
                "parameters": parameters,
            }
        )
        for verdict in scenario.get("verdicts") or ():
            label = f"{name}: {verdict['figure']}"
            if verdict["outcome"] == "met":
                area.add("passed", label)
            else:
                median = verdict.get("median")
                why = "not measured" if median is None else f"median {median:g}"
                area.add("failed", label, f"{verdict['figure']} {why} (aim {verdict['aim']})")
        info = scenario.get("figure_info") or {}
        for figure, stat in (scenario.get("summary") or {}).items():
            about = info.get(figure) or {}
            figures.append(
                {
                    "scenario": name,
                    "figure": figure,
                    "median": stat.get("median"),
                    "min": stat.get("min"),
                    "max": stat.get("max"),
                    "unit": about.get("unit", ""),
                    "better": about.get("better", "none"),
                    "aim": about.get("aim"),
                    "description": about.get("description", ""),
                }
            )
    check = doc.get("check") or {}
    comparison = doc.get("comparison") or {}
    counts = {
        "scenarios": len(scenarios),
        "aims": int(check.get("aims", 0)),
        "met": int(check.get("met", 0)),
        "missed": len(check.get("failed") or ()),
        "regressed": sum(1 for row in comparison.get("rows") or () if row.get("regressed")),
    }
    return Summary(
        title=_clip(" ".join(doc["argv"]), TITLE_CHARS),
        ok=not counts["missed"] and not comparison.get("regressed", False),
        duration_s=float(doc["seconds"]),
        counts=counts,
        # a run without aims says nothing pass or fail about the benchmarks
        areas=[area.row()] if sum(area.counts.values()) else [],
        scenarios=scenarios,
        figures=figures,
    )


# ---------------------------------------------------------------- pipeline


def _pipeline(doc: Mapping[str, Any]) -> Summary:
    area = Area(PIPELINE_AREA)
    for step in doc["steps"]:
        label = f"step {step['number']}: {step['name']}"
        if step["ok"]:
            area.add("passed", label)
        else:
            area.add("failed", label, step["detail"].splitlines()[0] if step["detail"] else None)
    for finding in doc["findings"]:
        area.add("failed", finding["where"] or finding["kind"], f"[{finding['kind']}] {finding['message']}")
    options = doc["options"]
    title = " ".join(
        ["tolu ci integration", *_options(options, ("server", "scheduler")), *_faults(options.get("faults"))]
    )
    duration = doc.get("duration")
    return Summary(
        title=_clip(title, TITLE_CHARS),
        ok=bool(doc["ok"]),
        duration_s=float(duration) if duration is not None else None,
        counts={
            "steps": len(doc["steps"]),
            "steps_failed": sum(1 for s in doc["steps"] if not s["ok"]),
            "findings": len(doc["findings"]),
        },
        areas=[area.row()],
    )


def _options(options: Mapping[str, Any], names: Iterable[str]) -> list[str]:
    return [f"--{name} {options[name]}" for name in names if options.get(name)]


def _faults(faults: Any) -> list[str]:
    return [f"--fault {f}" for f in faults or ()]


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."
