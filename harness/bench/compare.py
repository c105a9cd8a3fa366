"""``--compare BASELINE.json --fail-on PERCENT``: ratios against an earlier run.

Only ``ratio_*`` figures are compared: a ratio to a baseline measured in the same
run carries across machines and across noisy days; absolute jobs/s do not. A
figure regresses when it moved in its worse direction by more than PERCENT.
"""

from __future__ import annotations

from pathlib import Path

from harness.bench.figures import COMPARED_PREFIX
from harness.bench.schema import BenchResult, CompareRow, Comparison, load


def compare(current: BenchResult, baseline_path: str | Path, fail_on: float | None) -> Comparison:
    before = load(baseline_path)
    rows: list[CompareRow] = []
    notes: list[str] = []
    old_scenarios = {s.name: s for s in before.scenarios}
    for scenario in current.scenarios:
        old = old_scenarios.get(scenario.name)
        if old is None:
            notes.append(f"scenario {scenario.name}: not in {baseline_path}")
            continue
        differ = sorted(
            k
            for k in scenario.parameters.keys() & old.parameters.keys()
            if scenario.parameters[k] != old.parameters[k]
        )
        if differ:
            notes.append(
                f"scenario {scenario.name}: parameters differ: "
                + ", ".join(f"{k} {old.parameters[k]!r} -> {scenario.parameters[k]!r}" for k in differ)
            )
        for name, stat in scenario.summary.items():
            if not name.startswith(COMPARED_PREFIX) or name not in old.summary:
                continue
            a = old.summary[name].median
            b = stat.median
            change = None if a in (None, 0) or b is None else (b - a) / abs(a) * 100
            info = scenario.figure_info.get(name)
            better = info.better if info else "higher"
            worse = change is not None and (change < 0 if better == "higher" else change > 0)
            regressed = bool(worse and fail_on is not None and change is not None and abs(change) > fail_on)
            rows.append(
                CompareRow(
                    scenario=scenario.name,
                    figure=name,
                    before=a,
                    after=b,
                    change_percent=change,
                    regressed=regressed,
                )
            )
    return Comparison(
        baseline_path=str(baseline_path),
        fail_on_percent=fail_on,
        rows=rows,
        regressed=any(r.regressed for r in rows),
        notes=notes,
    )
