"""``--against-history N --fail-on PERCENT``: each ratio against the rolling median of the last N
published runs of the same scenario at the same location (docs/results.md).

One earlier bench.json (``--compare``) is one noisy night; the median of the last N nights is
what the ratio usually is. The history is read from the tolu server the runs were published
to (``GET /runs/trends``): the runs of the same scenario (the same command, scenario name and
parameters: ``runner.models.scenario_key``) at the same harness location that started before
this one. A scenario with no history yet is noted and passes (the first night of a new job).
A figure regresses as with ``--compare`` (harness/bench/compare.py): moved in its worse
direction by more than PERCENT.
"""

from __future__ import annotations

import statistics
from collections.abc import Collection
from dataclasses import dataclass
from urllib.parse import urlencode

from harness.bench.compare import compared, gate_notes, row
from harness.bench.schema import BenchResult, CompareRow, Comparison
from runner.client import Client
from runner.client.errors import ToluError
from runner.models import scenario_key


class HistoryError(Exception):
    """The history could not be read (server unreachable, credential refused); one line."""


@dataclass(frozen=True)
class HistoryGate:
    """Where the history is (a client of the server), whose (``location``), and how much (``runs``)."""

    client: Client
    location: str
    runs: int

    def compare(
        self, current: BenchResult, fail_on: float | None, gate_on: Collection[str] = ()
    ) -> Comparison:
        rows: list[CompareRow] = []
        notes: list[str] = []
        for scenario in current.scenarios:
            figures = compared(scenario)
            if not figures:
                continue
            key = scenario_key(current.command, scenario.name, scenario.parameters)
            try:
                trend = self.client.runs.trend(
                    key, location=self.location, before=current.created_at, limit=self.runs, figures=figures
                )
            except ToluError as exc:
                where = f"{key} at {self.client.url}"
                raise HistoryError(f"reading the history of {where} failed: {exc}") from None
            if not trend.points:
                notes.append(
                    f"scenario {scenario.name}: no published run of it at {self.location} yet "
                    "(same command and parameters); nothing to compare with"
                )
                continue
            if len(trend.points) < self.runs:
                notes.append(
                    f"scenario {scenario.name}: {len(trend.points)} of {self.runs} earlier runs published "
                    f"at {self.location}; the median is over those"
                )
            for name in figures:
                medians = [
                    stat.median
                    for point in trend.points
                    if (stat := point.figures.get(name)) is not None and stat.median is not None
                ]
                if medians:
                    median = statistics.median(medians)
                    rows.append(row(scenario, name, median, fail_on, runs=len(medians), gate_on=gate_on))
        query = urlencode({"location": self.location, "limit": self.runs})
        comparison = Comparison(
            baseline_path=f"{self.client.url}/runs/trends?{query}",
            fail_on_percent=fail_on,
            rows=rows,
            regressed=any(r.regressed for r in rows),
            notes=notes,
            source="history",
            location=self.location,
        )
        gate_notes(comparison, gate_on)
        return comparison
