"""``tolu bench chaos`` on a small scale: 300 jobs, one kill of each kind, nothing lost, nothing doubled.

A real run: its own PostgreSQL (initdb, pg_ctl), a tolu server on it, a site agent
running a postprocess hook, a serial-mode launcher; the launcher's process tree, the
agent and the server are SIGKILLed and PostgreSQL crashed (``-m immediate``), each
once, and each restarted. The seed is fixed, so the same faults come at the same
points of the run every time.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest

from harness.bench import chaos
from harness.bench.schema import load

JOBS = 300

pytestmark = pytest.mark.requires("postgres")


@pytest.fixture(scope="module")
def chaos_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("chaos") / "out"
    argv = [
        sys.executable, "-m", "runner.cli.main", "bench", "chaos", "--jobs", str(JOBS), "--kills", "1",
        "--sleep", "0.1", "--seed", "7", "--out", str(out), "--check",
    ]  # fmt: skip
    done = subprocess.run(argv, capture_output=True, text=True, timeout=1200, check=False)
    assert (out / "bench.json").is_file(), (
        f"{argv} wrote no bench.json:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    )
    (out / "exit_code").write_text(str(done.returncode))
    (out / "stdout").write_text(done.stdout)
    return out


def test_every_fault_was_injected_and_restarted(chaos_dir: Path) -> None:
    (scenario,) = load(chaos_dir / "bench.json").scenarios
    (trial,) = scenario.trials
    injected = [e for e in trial.chaos if "by itself" not in e.action]
    assert sorted(e.target for e in injected) == sorted(chaos.TARGETS)
    assert all(0 < e.done_fraction < 1 and e.down_s > 0 for e in injected)
    assert trial.figures["faults"] == 4


def test_nothing_lost_nothing_run_twice_at_once(chaos_dir: Path) -> None:
    (scenario,) = load(chaos_dir / "bench.json").scenarios
    (trial,) = scenario.trials
    assert trial.figures["jobs_lost"] == 0, trial.notes
    assert trial.figures["run_twice_concurrently"] == 0, trial.notes
    assert trial.figures["task_runs_concurrent"] == 0, trial.notes
    assert sum(trial.final_states.values()) == JOBS
    assert set(trial.final_states) <= {"JOB_FINISHED", "FAILED"}
    # every real start is in the history, once (issue 16, item 8)
    assert trial.figures["unrecorded_starts"] == 0, trial.notes
    assert trial.figures["replayed_starts"] == 0, trial.notes
    # --check passed: every aim (the five above) was met
    assert (chaos_dir / "exit_code").read_text() == "0", (chaos_dir / "stdout").read_text()[-3000:]


def test_the_run_keeps_its_evidence(chaos_dir: Path) -> None:
    document = json.loads((chaos_dir / "bench.json").read_text())
    schema = json.loads((chaos_dir / "bench.schema.json").read_text())
    jsonschema.Draft202012Validator(schema).validate(document)
    journal = next((chaos_dir / "logs").glob("*/journal.txt"))
    starts = [line for line in journal.read_text().splitlines() if line.split()[2:3] == ["s"]]
    assert len(starts) >= JOBS, "every job's task noted its start"
    html = (chaos_dir / "report.html").read_text()
    assert "pg_ctl stop -m immediate" in html and "its process tree" in html


def test_faults_are_planned_from_the_seed() -> None:
    a = chaos.plan(kills=3, targets=chaos.TARGETS, seed=11, down_s=(1.0, 10.0))
    assert a == chaos.plan(kills=3, targets=chaos.TARGETS, seed=11, down_s=(1.0, 10.0))
    assert a != chaos.plan(kills=3, targets=chaos.TARGETS, seed=12, down_s=(1.0, 10.0))
    assert len(a) == 12 and [f.at_fraction for f in a] == sorted(f.at_fraction for f in a)
    assert all(chaos.WINDOW[0] <= f.at_fraction <= chaos.WINDOW[1] and 1 <= f.down_s <= 10 for f in a)
