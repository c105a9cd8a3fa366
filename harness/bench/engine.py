"""The one code path behind every ``tolu bench`` command.

A command builds its scenarios (objects with ``describe()`` and ``run(index)``);
the engine repeats them, interleaved so that noise hits every scenario alike,
summarizes min/median/max, judges every median that has an aim (harness/bench/verdicts.py),
writes bench.json, bench.schema.json, bench.csv and report.html, compares with an
earlier run, and says whether a ratio regressed and whether every aim was met.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from harness.bench import filesystem, output, quiet, report, stats, verdicts
from harness.bench.compare import compare
from harness.bench.schema import BenchResult, FigureInfo, Machine, Scenario
from harness.bench.throughput import JobRow, TrialOutput

if TYPE_CHECKING:
    from harness.bench.history_gate import HistoryGate

#: every trial's figure of how busy the machine was when it began (the run's start is in
#: ``Machine.load_average``; a later trial may start on a busier or a quieter machine)
LOAD_FIGURE = "load_1min_at_start"
LOAD_INFO = FigureInfo(
    unit="load",
    better="none",
    description="the machine's 1-minute load average when the trial began: read the trial's rates beside it",
)


class ScenarioRunner(Protocol):
    @property
    def name(self) -> str: ...
    def describe(self) -> Scenario: ...
    def run(self, index: int) -> TrialOutput: ...


@dataclass
class RunOptions:
    command: str
    argv: list[str]
    parameters: dict[str, Any]
    out_dir: Path
    repeat: int = 1
    compare_path: Path | None = None
    fail_on: float | None = None
    #: with fail_on: the ratios that can fail the run (--gate-on); empty: every ratio
    gate_on: tuple[str, ...] = ()
    #: compare with the published history instead of one file (--against-history)
    history: HistoryGate | None = None
    notes: list[str] = field(default_factory=list)
    #: wait for a quiet machine before the first trial (--quiet-wait)
    quiet_wait: quiet.QuietWait | None = None


@dataclass
class RunOutcome:
    result: BenchResult
    json_path: Path
    report_path: Path
    csv_path: Path

    @property
    def regressed(self) -> bool:
        return bool(self.result.comparison and self.result.comparison.regressed)

    @property
    def missed(self) -> list[str]:
        """``scenario: figure median (aim)`` of every aim not met (missed or not measured)."""
        return list(self.result.check.failed) if self.result.check else []


def default_out_dir(command: str, root: Path | None = None) -> Path:
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    return (root or Path("artifacts")) / f"bench-{command}-{stamp}"


def run(opts: RunOptions, runners: Sequence[ScenarioRunner], machine: Machine) -> RunOutcome:
    opts.out_dir.mkdir(parents=True, exist_ok=True)
    if opts.quiet_wait is not None:
        opts.notes.append(quiet.wait(opts.quiet_wait))
    scenarios = {r.name: r.describe() for r in runners}
    for scenario in scenarios.values():
        scenario.figure_info.setdefault(LOAD_FIGURE, LOAD_INFO)
    rows: list[JobRow] = []
    created_at = datetime.now(UTC)
    start = time.perf_counter()
    for index in range(opts.repeat):
        for runner in runners:
            load = quiet.load_1min()
            out = runner.run(index)
            out.trial.figures.setdefault(LOAD_FIGURE, load)
            scenarios[runner.name].trials.append(out.trial)
            rows.extend(out.rows)
    for scenario in scenarios.values():
        scenario.summary = stats.summarize(scenario.trials)
        scenario.verdicts = verdicts.judge(scenario)
    result = BenchResult(
        command=opts.command,
        argv=opts.argv,
        created_at=created_at,
        seconds=time.perf_counter() - start,
        machine=machine,
        parameters=opts.parameters,
        scenarios=list(scenarios.values()),
        notes=_notes(machine, opts.notes),
        csv=output.CSV_NAME,
        report=output.REPORT_NAME,
        check=verdicts.check(scenarios.values()),
    )
    if opts.compare_path is not None:
        result.comparison = compare(result, opts.compare_path, opts.fail_on, opts.gate_on)
    elif opts.history is not None:
        result.comparison = opts.history.compare(result, opts.fail_on, opts.gate_on)
    csv_path = output.write_csv(rows, opts.out_dir)
    json_path = output.write_json(result, opts.out_dir)
    report_path = report.write(result, opts.out_dir / output.REPORT_NAME, rows)
    return RunOutcome(result, json_path, report_path, csv_path)


def _notes(machine: Machine, extra: list[str]) -> list[str]:
    notes = list(extra)
    if (
        machine.load_average
        and machine.cores_logical
        and machine.load_average[0] > 0.5 * machine.cores_logical
    ):
        notes.append(
            f"the machine was busy when the run started (1-min load {machine.load_average[0]:.2f} on "
            f"{machine.cores_logical} cores): absolute rates are noisy; the ratios, measured in the same "
            "trial, are the figures to trust"
        )
    if machine.slow_inode_reuse:
        notes.append(filesystem.SLOW_REUSE_NOTE)
    return notes
