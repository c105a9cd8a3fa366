"""harness/bench/quiet.py and ``--quiet-wait``: a run waits for a quiet machine, and says what it came to.

The wait's clock, sleep and load average are handed in, so these tests run it through
whole minutes without waiting; one run goes through the engine with the real ones.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from harness.bench import engine, machine, quiet
from harness.bench.quiet import QuietWait
from harness.bench.schema import FigureInfo, Scenario, Trial
from harness.bench.throughput import TrialOutput


class OneFigure:
    """A stand-in scenario: one trial, one figure, through the real engine."""

    name = "q"

    def describe(self) -> Scenario:
        return Scenario(name=self.name, figure_info={"speed": FigureInfo(unit="jobs/s", better="higher")})

    def run(self, index: int) -> TrialOutput:
        trial = Trial(index=index, started_at=datetime.now(UTC), seconds=1.0, figures={"speed": 1.0})
        return TrialOutput(trial, [])


class FakeTime:
    """A clock that moves only when slept on, and a load average read from a list."""

    def __init__(self, loads: list[float | None]) -> None:
        self.now = 0.0
        self.slept: list[float] = []
        self._loads: Iterator[float | None] = iter(loads)
        self.said: list[str] = []

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds

    def load(self) -> float | None:
        return next(self._loads)

    def run(self, wait: QuietWait) -> str:
        return quiet.wait(
            wait, say=self.said.append, load=self.load, sleep=self.sleep, clock=lambda: self.now
        )


def test_it_settles_then_waits_for_the_load_to_fall() -> None:
    t = FakeTime([2.5, 1.4, 0.6])
    note = t.run(QuietWait(settle_s=180, load_below=1.0))
    assert t.slept == [180, quiet.POLL_S, quiet.POLL_S]
    assert note == "waited 190 s for a quiet machine (--quiet-wait): 1-minute load 0.60 at the first trial"
    assert t.said[0].startswith("waiting 180 s, then for a 1-minute load under 1,") and t.said[-1] == note


def test_a_machine_that_stays_busy_starts_the_run_after_the_longest_wait_and_says_so() -> None:
    t = FakeTime([3.0] * 10)
    note = t.run(QuietWait(settle_s=1, load_below=1.0, most_s=12))
    assert t.slept == [1, quiet.POLL_S, quiet.POLL_S, 2]
    assert note.startswith("the machine did not become quiet in 13 s (--quiet-wait): 1-minute load 3.00")
    assert "not under 1" in note


def test_a_quiet_machine_is_not_waited_for_past_the_settling() -> None:
    t = FakeTime([0.2])
    assert t.run(QuietWait(settle_s=0)) == (
        "waited 0 s for a quiet machine (--quiet-wait): 1-minute load 0.20 at the first trial"
    )
    assert t.slept == [0]


def test_without_a_load_average_it_only_settles() -> None:
    t = FakeTime([None])
    assert t.run(QuietWait(settle_s=30)) == (
        "waited 30 s before the first trial (--quiet-wait); this system has no load average"
    )


def test_the_engine_waits_before_the_first_trial_and_notes_it(tmp_path: Path) -> None:
    wait = QuietWait(settle_s=0, load_below=10_000)  # any machine is that quiet
    opts = engine.RunOptions(command="test", argv=["test"], parameters={}, out_dir=tmp_path, quiet_wait=wait)
    outcome = engine.run(opts, [OneFigure()], machine.collect())
    notes = json.loads(outcome.json_path.read_text())["notes"]
    (note,) = [n for n in notes if "--quiet-wait" in n]
    assert note.startswith("waited 0 s for a quiet machine (--quiet-wait): 1-minute load ")


def test_a_negative_wait_is_refused_in_one_line() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "runner.cli.main", "bench", "throughput", "--quiet-wait", "-5"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2
    assert "--quiet-wait" in done.stderr and "-5" in done.stderr
