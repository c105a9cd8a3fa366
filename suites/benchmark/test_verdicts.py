"""Aims and verdicts: ✓/✗ in the terminal and in report.html, and ``--check``'s exit code.

The scenarios here are stand-ins whose figures the test chooses, run through the real
engine (files, report) and the real CLI printing; a real run's figures cannot be
chosen, and its verdicts are whatever the machine gives.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import click
import jsonschema
import pytest
from click.testing import CliRunner

from harness.bench import cli, engine, machine, verdicts
from harness.bench.schema import FigureInfo, Scenario, Trial
from harness.bench.throughput import TrialOutput


@dataclass
class Chosen:
    """A scenario whose trials report the figures given, one dict per trial."""

    name: str
    trials: list[dict[str, float | None]]

    def describe(self) -> Scenario:
        return Scenario(
            name=self.name,
            description="figures chosen by the test",
            figure_info={
                "speed": FigureInfo(unit="jobs/s", better="higher", aim=">= 10"),
                "lag_ms": FigureInfo(unit="ms", better="lower", aim="< 5"),
                "cpu_ms": FigureInfo(unit="ms", better="lower", aim="<= 0.06"),
                "free": FigureInfo(unit="jobs", better="none"),
            },
        )

    def run(self, index: int) -> TrialOutput:
        trial = Trial(index=index, started_at=datetime.now(UTC), seconds=1.0, figures=self.trials[index])
        return TrialOutput(trial, [])


def _run(tmp_path: Path, *runners: Chosen, repeat: int = 1) -> engine.RunOutcome:
    opts = engine.RunOptions(command="test", argv=["test"], parameters={}, out_dir=tmp_path, repeat=repeat)
    return engine.run(opts, list(runners), machine.collect())


def test_aims_parse_and_judge() -> None:
    assert verdicts.parse(">= 0.8") == (">=", 0.8)
    assert verdicts.parse("<1e3") == ("<", 1000.0)
    assert verdicts.outcome("<= 0.06", 0.06) == "met"
    assert verdicts.outcome("< 10", 10.0) == "missed"
    assert verdicts.outcome(">= 0.9", None) == "unmeasured"
    with pytest.raises(ValueError, match="expected an operator"):
        verdicts.parse("about 3")


def test_the_median_is_judged_and_a_figure_no_trial_has_gets_no_verdict(tmp_path: Path) -> None:
    # speed's median is 12 (met although one trial missed); lag_ms 6 (missed); cpu_ms absent
    outcome = _run(
        tmp_path,
        Chosen(
            "a",
            [{"speed": 8.0, "lag_ms": 6.0}, {"speed": 12.0, "lag_ms": 7.0}, {"speed": 13.0, "lag_ms": 1.0}],
        ),
        repeat=3,
    )
    (scenario,) = outcome.result.scenarios
    assert {v.figure: v.outcome for v in scenario.verdicts} == {"speed": "met", "lag_ms": "missed"}
    assert outcome.result.check is not None
    assert (outcome.result.check.aims, outcome.result.check.met) == (2, 1)
    assert outcome.missed == ["a: lag_ms 6 (aim < 5)"]


def test_a_figure_with_an_aim_that_was_not_measured_fails_the_check(tmp_path: Path) -> None:
    outcome = _run(tmp_path, Chosen("b", [{"speed": 11.0, "cpu_ms": None}]))
    (scenario,) = outcome.result.scenarios
    assert {v.figure: v.outcome for v in scenario.verdicts} == {"speed": "met", "cpu_ms": "unmeasured"}
    assert outcome.missed == ["b: cpu_ms not measured (aim <= 0.06)"]


def test_verdicts_are_in_bench_json_and_report_html(tmp_path: Path) -> None:
    outcome = _run(tmp_path, Chosen("c", [{"speed": 11.0, "lag_ms": 9.0, "free": 3.0}]))
    document = json.loads(outcome.json_path.read_text())
    schema = json.loads((tmp_path / "bench.schema.json").read_text())
    jsonschema.Draft202012Validator(schema).validate(document)
    assert document["schema_version"] == "1.5"
    assert document["check"] == {"aims": 2, "met": 1, "failed": ["c: lag_ms 9 (aim < 5)"]}
    # the engine adds every trial's load at its start, and it never takes an aim
    (scenario,) = document["scenarios"]
    (trial,) = scenario["trials"]
    assert trial["figures"]["load_1min_at_start"] >= 0
    assert "load_1min_at_start" not in {v["figure"] for v in scenario["verdicts"]}
    html = outcome.report_path.read_text()
    assert '<td class="ok" title="met">✓</td>' in html
    assert '<td class="bad" title="missed">✗</td>' in html
    assert "aims met: 1 of 2" in html


def _command(outcome: engine.RunOutcome) -> click.Command:
    @click.command()
    @click.option("--check", is_flag=True)
    def bench(check: bool) -> None:
        cli._run(("speed", "lag_ms", "free"), lambda runs: outcome, check=check)

    return bench


def test_check_exits_non_zero_only_when_an_aim_is_missed(tmp_path: Path) -> None:
    good = _run(tmp_path / "good", Chosen("good", [{"speed": 11.0, "lag_ms": 1.0}]))
    bad = _run(tmp_path / "bad", Chosen("bad", [{"speed": 9.0, "lag_ms": 1.0}]))
    runner = CliRunner()

    passed = runner.invoke(_command(good), ["--check"])
    assert passed.exit_code == 0, passed.output
    assert "aims met: 2 of 2" in passed.output and "✓" in passed.output and "✗" not in passed.output

    failed = runner.invoke(_command(bad), ["--check"])
    assert failed.exit_code == 1
    assert "✗" in failed.output
    assert "Error: 1 aim(s) not met: bad: speed 9 (aim >= 10)" in failed.output

    unchecked = runner.invoke(_command(bad), [])
    assert unchecked.exit_code == 0, "without --check a missed aim is shown, not an error"
