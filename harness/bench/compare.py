"""``--compare BASELINE.json --fail-on PERCENT``: ratios against an earlier run.

Only ``ratio_*`` figures are compared: a ratio to a baseline measured in the same
run carries across machines and across noisy days; absolute jobs/s do not. A
figure regresses when it moved in its worse direction by more than PERCENT
(``row``, also what ``--against-history`` decides with: harness/bench/history_gate.py).
"""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path

from harness.bench.figures import COMPARED_PREFIX
from harness.bench.schema import BenchResult, CompareRow, Comparison, Scenario, load


def compared(scenario: Scenario) -> list[str]:
    """The figures of ``scenario`` that comparisons check: its ratios."""
    return [name for name in scenario.summary if name.startswith(COMPARED_PREFIX)]


def gate_notes(comparison: Comparison, gate_on: Collection[str]) -> None:
    """Note each ``--gate-on`` ratio that no compared scenario has (a typo gates on nothing)."""
    present = {r.figure for r in comparison.rows}
    for name in sorted(set(gate_on) - present):
        comparison.notes.append(f"--gate-on {name}: no compared scenario has this ratio; it gates nothing")


def row(
    scenario: Scenario,
    name: str,
    before: float | None,
    fail_on: float | None,
    *,
    runs: int | None = None,
    gate_on: Collection[str] = (),
) -> CompareRow:
    """``name``'s median in ``scenario`` against ``before``: regressed when it moved in its worse
    direction by more than ``fail_on`` percent, and ``gate_on`` is empty or names it."""
    gated = not gate_on or name in gate_on
    after = scenario.summary[name].median
    change = None if before in (None, 0) or after is None else (after - before) / abs(before) * 100
    info = scenario.figure_info.get(name)
    better = info.better if info else "higher"
    worse = change is not None and (change < 0 if better == "higher" else change > 0)
    regressed = bool(gated and worse and fail_on is not None and change is not None and abs(change) > fail_on)
    return CompareRow(
        scenario=scenario.name,
        figure=name,
        before=before,
        after=after,
        change_percent=change,
        regressed=regressed,
        runs=runs,
        gated=gated,
    )


def compare(
    current: BenchResult, baseline_path: str | Path, fail_on: float | None, gate_on: Collection[str] = ()
) -> Comparison:
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
        for name in compared(scenario):
            if name in old.summary:
                rows.append(row(scenario, name, old.summary[name].median, fail_on, gate_on=gate_on))
    comparison = Comparison(
        baseline_path=str(baseline_path),
        fail_on_percent=fail_on,
        rows=rows,
        regressed=any(r.regressed for r in rows),
        notes=notes,
    )
    gate_notes(comparison, gate_on)
    return comparison
