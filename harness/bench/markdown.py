"""``python -m harness.bench.markdown bench.json [FIGURE ...]``: a run as Markdown.

Used to copy measured figures into docs/performance.md without retyping them:
the command, the date, the machine and one table per scenario.
"""

from __future__ import annotations

import shlex
import sys
from collections.abc import Sequence

from harness.bench.numbers import fmt
from harness.bench.schema import BenchResult, load
from harness.bench.verdicts import mark


def _fmt(value: float | None, unit: str) -> str:
    return fmt(value, unit, none="–")  # noqa: RUF001 (an en dash reads as "none" in a table)


def render(result: BenchResult, figures: Sequence[str] = ()) -> str:
    m = result.machine
    lines = [
        f"`{shlex.join(result.argv)}` — {result.created_at:%Y-%m-%d %H:%M} UTC, {result.seconds:.0f} s; "
        f"{m.cpu_model}, {m.cores_logical} cores, {m.memory_bytes / 2**30:.1f} GiB, {m.os}, "
        f"Python {m.python}"
        + (f" ({m.python_loop_ns:.0f} ns per loop step)" if m.python_loop_ns is not None else "")
        + f", {m.mpi or 'no MPI'}, {m.database} {m.database_version or ''}"
        + (f", job directories on {m.file_system}" if m.file_system else "")
        + "; "
        f"load average at start {', '.join(f'{x:.1f}' for x in m.load_average)}",
        "",
    ]
    for scenario in result.scenarios:
        trials = len(scenario.trials)
        lines.append(
            f"*{scenario.name}* — {scenario.description}" + (f" ({trials} trials)" if trials > 1 else "")
        )
        lines.append("")
        lines.append(
            "| figure | median | min | max | unit | aim | |"
            if trials > 1
            else "| figure | value | unit | aim | |"
        )
        lines.append("|---|---:|---:|---:|---|---|---|" if trials > 1 else "|---|---:|---|---|---|")
        names = list(figures) or list(scenario.summary)
        for name in names:
            stat = scenario.summary.get(name)
            info = scenario.figure_info.get(name)
            if stat is None or info is None or stat.median is None:
                continue
            cells = [f"`{name}`", _fmt(stat.median, info.unit)]
            if trials > 1:
                cells += [_fmt(stat.min, info.unit), _fmt(stat.max, info.unit)]
            cells += [info.unit, info.aim or "", mark(scenario, name)]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args:
        print("usage: python -m harness.bench.markdown bench.json [FIGURE ...]", file=sys.stderr)
        return 2
    print(render(load(args[0]), args[1:]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
