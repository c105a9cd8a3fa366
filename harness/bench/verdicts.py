"""Aims and verdicts: does a figure's median meet the aim set for it?

An aim is an operator and a number (``>= 0.8``, ``< 10``, ``<= 0.06``), kept with the
figure's description (harness/bench/figures.py). A verdict is ``met``, ``missed``, or
``unmeasured``: a trial that reports a figure as None could not measure it, and a gate
must not pass on a figure it never saw. A figure no trial reports at all does not apply
to the run (a role no process had) and gets no verdict. ``tolu bench ... --check``
fails unless every verdict is met.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Iterable

from harness.bench.schema import Check, Outcome, Scenario, Verdict

_AIM = re.compile(r"^\s*(>=|<=|<|>)\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*$")
_OPS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge,
    "<=": operator.le,
    "<": operator.lt,
    ">": operator.gt,
}
#: how a verdict is shown in the terminal and in report.html
MARKS: dict[Outcome, str] = {"met": "✓", "missed": "✗", "unmeasured": "?"}


def parse(aim: str) -> tuple[str, float]:
    """``">= 0.8"`` -> ``(">=", 0.8)``; ValueError for anything else."""
    match = _AIM.match(aim)
    if match is None:
        raise ValueError(f"aim {aim!r}: expected an operator (>=, <=, <, >) and a number, e.g. '>= 0.8'")
    return match.group(1), float(match.group(2))


def outcome(aim: str, value: float | None) -> Outcome:
    if value is None:
        return "unmeasured"
    op, bound = parse(aim)
    return "met" if _OPS[op](value, bound) else "missed"


def judge(scenario: Scenario) -> list[Verdict]:
    """A verdict for every figure of ``scenario`` that has an aim, on its median."""
    out = []
    for name, info in scenario.figure_info.items():
        stat = scenario.summary.get(name)
        if not info.aim or stat is None:
            continue
        median = stat.median
        out.append(Verdict(figure=name, aim=info.aim, median=median, outcome=outcome(info.aim, median)))
    return out


def check(scenarios: Iterable[Scenario]) -> Check:
    aims = met = 0
    failed: list[str] = []
    for scenario in scenarios:
        for v in scenario.verdicts:
            aims += 1
            if v.outcome == "met":
                met += 1
                continue
            shown = "not measured" if v.median is None else f"{v.median:.4g}"
            failed.append(f"{scenario.name}: {v.figure} {shown} (aim {v.aim})")
    return Check(aims=aims, met=met, failed=failed)


def mark(scenario: Scenario, figure: str) -> str:
    """✓, ✗ or ? for a figure with an aim; "" for one without."""
    for v in scenario.verdicts:
        if v.figure == figure:
            return MARKS[v.outcome]
    return ""
