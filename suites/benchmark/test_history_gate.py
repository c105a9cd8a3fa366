"""``tolu bench ... --publish`` and ``--against-history N --fail-on PERCENT`` against a real server.

The planted regression is the launcher's test switch ``TOLU_TEST_TASK_DELAY`` (each task waits
that long before it starts, in the spawners): with it the gate fails, without it the same gate
passes. The gate is on the throughput ratios only (``--gate-on``), with a wide threshold (80%):
a test must pass on a busy machine, and the switch makes those ratios fall far more than the
noise does. The CPU ratios of a 300-job run are mostly the spawners' start-up and swung by more
than 100% between runs of the same code on a loaded machine; they are shown, not gated. Nothing
here asserts how fast anything is.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from harness.bench.history_gate import HistoryGate
from harness.bench.schema import BenchResult, FigureInfo, Scenario, Stat
from harness.publish import Publication, publish, target
from runner.client import Client
from runner.launcher.spawner import TEST_TASK_DELAY_ENV, SlowedSpawner, Spawner, spawner_class
from runner.models import scenario_key

#: a small serial-mode run: enough jobs that the ratios are not all noise, quick on two cores
BENCH = [
    "throughput", "--mode", "serial", "--jobs", "300", "--baseline-jobs", "300", "--location", "workstation",
]  # fmt: skip
GATE = ["--against-history", "3", "--fail-on", "80", "--gate-on", "ratio_run", "--gate-on", "ratio_overall"]
#: seconds each task waits with the switch on (a /bin/true task takes a few milliseconds)
DELAY = "0.1"


#: the runs' work directories (sites, pools' task directories) on tmpfs where there is one: on
#: a disk file system a new inode can cost 20 times more for ~35 s after a deletion
#: (docs/performance.md, "The file system under the starters"), which moves every ratio
SCRATCH = {"TMPDIR": "/dev/shm"} if os.access("/dev/shm", os.W_OK) else {}


def _bench(out: Path, *extra: str, env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "runner.cli.main", "bench", *BENCH, "--out", str(out), *extra]
    return subprocess.run(
        argv,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        env={**os.environ, **SCRATCH, **(env or {})},
    )


def _ok(done: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert done.returncode == 0, f"{done.args}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


def test_the_gate_fails_on_a_slowed_launcher_and_passes_without(tolu_client: Client, tmp_path: Path) -> None:
    site = tolu_client.sites.create(name=f"bench-{uuid.uuid4().hex[:6]}", path="/tmp/b", hostname="h")
    for i in range(3):  # three nights of history
        done = _ok(_bench(tmp_path / f"night-{i}", "--publish"))
        assert f"published:  {tolu_client.url}/ui/runs/" in done.stdout.replace("\n", "")
    history = tolu_client.runs.filter(site_id=site.id, kind="bench")
    assert len(history) == 3 and {r.location for r in history} == {"workstation"}

    clean = _ok(_bench(tmp_path / "clean", *GATE))
    assert "compared with the median of the published runs at workstation" in clean.stdout.replace("\n", " ")
    comparison = json.loads((tmp_path / "clean" / "bench.json").read_text())["comparison"]
    assert comparison["source"] == "history" and comparison["location"] == "workstation"
    assert {r["figure"] for r in comparison["rows"]} >= {"ratio_run", "ratio_overall"}
    assert all(r["runs"] == 3 for r in comparison["rows"]) and not comparison["regressed"]
    gated = {r["figure"] for r in comparison["rows"] if r["gated"]}
    assert gated == {"ratio_run", "ratio_overall"}, "--gate-on: the other ratios are shown, not gated"
    assert len(tolu_client.runs.filter(site_id=site.id)) == 3, "gating alone publishes nothing"

    slowed = _bench(tmp_path / "slowed", *GATE, "--publish", env={TEST_TASK_DELAY_ENV: DELAY})
    assert slowed.returncode == 1, f"{slowed.stdout[-3000:]}\n{slowed.stderr[-3000:]}"
    assert slowed.stderr.strip().splitlines()[-1] == (
        "Error: a ratio regressed by more than 80% against the median of the published runs at "
        "workstation (see the table above)"
    )
    rows = {
        r["figure"]: r
        for r in json.loads((tmp_path / "slowed" / "bench.json").read_text())["comparison"]["rows"]
    }
    assert rows["ratio_run"]["regressed"] and rows["ratio_run"]["change_percent"] < -80
    # the regressed night is kept too: it is part of the history, red in the matrix
    newest = tolu_client.runs.filter(site_id=site.id, kind="bench")[0]
    assert newest.ok is False and newest.summary["regressed"] >= 1


def test_history_is_the_median_of_the_last_n_runs_of_the_same_scenario_and_location(
    tolu_client: Client,
) -> None:
    site = tolu_client.sites.create(name=f"gate-{uuid.uuid4().hex[:6]}", path="/tmp/g", hostname="h")
    to = target(site.name)
    start = datetime(2026, 11, 1, 2, 0, tzinfo=UTC)
    nights = [
        (0.95, 1.0, "ci"),  # too old for N=3
        (0.9, 1.2, "ci"),
        (0.8, 1.0, "ci"),
        (0.7, 1.1, "ci"),
        (0.1, 9.0, "elsewhere"),  # another location: not this history
    ]
    for day, (ratio, cpu, location) in enumerate(nights):
        result = _result(ratio, cpu, start + timedelta(days=day))
        publish(to, Publication.of_bench(result, location=location))
    other_parameters = _result(0.1, 9.0, start + timedelta(days=5), jobs=9)
    publish(to, Publication.of_bench(other_parameters, location="ci"))

    gate = HistoryGate(tolu_client, "ci", runs=3)
    today = _result(0.6, 1.4, start + timedelta(days=9))
    comparison = gate.compare(today, fail_on=20)
    rows = {r.figure: r for r in comparison.rows}
    assert (rows["ratio_run"].before, rows["ratio_run"].runs) == (0.8, 3)
    assert rows["ratio_run"].change_percent == pytest.approx(-25) and rows["ratio_run"].regressed
    assert rows["ratio_cpu_start_vs_pool"].before == 1.1, "lower is better: a rise is the regression"
    assert rows["ratio_cpu_start_vs_pool"].change_percent == pytest.approx(27.27, abs=0.01)
    assert rows["ratio_cpu_start_vs_pool"].regressed
    assert "jobs_per_s" not in rows, "only ratios travel across nights"
    assert comparison.regressed and comparison.source == "history" and comparison.location == "ci"
    assert not gate.compare(today, fail_on=30).regressed

    # --gate-on: only the named ratios can fail; the others are compared and shown
    assert gate.compare(today, fail_on=26).regressed, "the CPU ratio rose by 27%"
    run_only = gate.compare(today, fail_on=26, gate_on=("ratio_run",))
    shown = {r.figure: r for r in run_only.rows}
    assert not run_only.regressed and not shown["ratio_cpu_start_vs_pool"].regressed
    assert not shown["ratio_cpu_start_vs_pool"].gated and shown["ratio_run"].gated
    assert gate.compare(today, fail_on=20, gate_on=("ratio_run",)).regressed
    typo = gate.compare(today, fail_on=20, gate_on=("ratio_rn",))
    assert not typo.regressed
    assert "--gate-on ratio_rn: no compared scenario has this ratio; it gates nothing" in typo.notes

    # a run before all of them, or a location without runs: nothing to compare with, noted
    first = HistoryGate(tolu_client, "nowhere", runs=3).compare(today, fail_on=1)
    assert first.rows == [] and not first.regressed
    assert first.notes == [
        "scenario serial: no published run of it at nowhere yet (same command and parameters); "
        "nothing to compare with"
    ]
    few = HistoryGate(tolu_client, "ci", runs=10).compare(today, fail_on=20)
    assert {r.runs for r in few.rows} == {4}
    assert "4 of 10 earlier runs published at ci" in few.notes[0]


def _result(ratio: float, cpu: float, at: datetime, *, jobs: int = 300) -> BenchResult:
    from harness.bench.machine import collect

    figures = {"ratio_run": ratio, "ratio_cpu_start_vs_pool": cpu, "jobs_per_s": 100 * ratio}
    info = {
        "ratio_run": FigureInfo(unit="ratio", better="higher", aim=">= 0.8"),
        "ratio_cpu_start_vs_pool": FigureInfo(unit="ratio", better="lower"),
        "jobs_per_s": FigureInfo(unit="jobs/s", better="higher"),
    }
    scenario = Scenario(
        name="serial",
        parameters={"mode": "serial", "jobs": jobs},
        figure_info=info,
        summary={k: Stat(min=v, median=v, max=v, values=[v]) for k, v in figures.items()},
    )
    return BenchResult(
        command="throughput",
        argv=["tolu", "bench", "throughput"],
        created_at=at,
        seconds=1.0,
        machine=collect(),
        parameters={},
        scenarios=[scenario],
    )


def test_the_scenario_key_is_what_the_server_files_it_under(tolu_client: Client) -> None:
    site = tolu_client.sites.create(name=f"key-{uuid.uuid4().hex[:6]}", path="/tmp/k", hostname="h")
    result = _result(0.9, 1.0, datetime(2026, 11, 1, tzinfo=UTC))
    run = publish(target(str(site.id)), Publication.of_bench(result, location="ci"))
    key = scenario_key("throughput", "serial", {"mode": "serial", "jobs": 300})
    assert [s.key for s in run.scenarios] == [key]
    again = publish(target(site.name), Publication.of_bench(result, location="ci"))
    assert again.id == run.id, "the same bench.json published twice is one run"


def test_options_that_cannot_work_stop_before_anything_runs(tolu_client: Client, tmp_path: Path) -> None:
    both = _bench(tmp_path / "x", "--compare", __file__, *GATE)
    assert both.returncode == 2
    assert "--compare and --against-history are two baselines: give one" in both.stderr
    absolute = _bench(tmp_path / "w", *GATE, "--gate-on", "jobs_per_s")
    assert absolute.returncode == 2
    assert "--gate-on jobs_per_s: only ratios (ratio_...) are compared" in absolute.stderr
    alone = _bench(tmp_path / "v", "--gate-on", "ratio_run")
    assert alone.returncode == 2
    assert "--gate-on names the ratios --fail-on may fail on: give --fail-on too" in alone.stderr
    tolu_client.sites.create(name="one", path="/tmp/1", hostname="h")
    tolu_client.sites.create(name="two", path="/tmp/2", hostname="h")
    which = _bench(tmp_path / "y", "--publish")
    assert which.returncode == 1
    assert which.stderr.strip().splitlines() == [
        f"Error: cannot publish: your login at {tolu_client.url} reaches 2 sites (one, two); "
        "name one (a site directory, name or id)"
    ]
    unknown = _bench(tmp_path / "z", "--publish", "--site", "one", "--location", "atlantis")
    assert unknown.returncode == 1 and "unknown location 'atlantis'" in unknown.stderr
    assert not any((tmp_path / name).exists() for name in "vwxyz")


def test_the_slowing_switch_exists_only_when_set() -> None:
    """Unset (or 0), the spawner is the plain class: no task pays for the switch."""
    assert spawner_class({}) is Spawner
    assert spawner_class({TEST_TASK_DELAY_ENV: "0"}) is Spawner
    slowed = spawner_class({TEST_TASK_DELAY_ENV: "0.25"})
    assert issubclass(slowed, SlowedSpawner) and slowed.delay == 0.25
    with pytest.raises(SystemExit, match=r"TOLU_TEST_TASK_DELAY='soon': expected seconds"):
        spawner_class({TEST_TASK_DELAY_ENV: "soon"})
