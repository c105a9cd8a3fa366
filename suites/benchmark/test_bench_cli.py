"""`tolu bench throughput` end to end (small N): the files it promises, valid against the schema.

``tolu bench`` is harness/bench/cli.py, plugged into ``tolu`` through the ``tolu.commands``
entry points; these tests run it as a user does, through ``runner.cli.main``.
Behaviour only: nothing here asserts how fast anything was.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest

from harness.bench import runs
from harness.bench.compare import compare
from harness.bench.schema import SCHEMA_FILE, SCHEMA_VERSION, json_schema, load
from harness.bench.throughput import POLL_MAX_S, POLL_MIN_S, next_poll

JOBS = 200


@pytest.fixture(scope="module")
def bench_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("bench") / "out"
    argv = [
        sys.executable,
        "-m",
        "runner.cli.main",
        "bench",
        "throughput",
        "--jobs",
        str(JOBS),
        "--mode",
        "both",
        "--baseline-jobs",
        "50",
        "--out",
        str(out),
    ]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, (
        f"{argv} exited {done.returncode}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    )
    assert "report:" in done.stdout and str(out / "report.html") in done.stdout.replace("\n", "")
    return out


def test_bench_json_validates_against_its_schema(bench_dir: Path) -> None:
    document = json.loads((bench_dir / "bench.json").read_text())
    schema = json.loads((bench_dir / "bench.schema.json").read_text())
    jsonschema.Draft202012Validator(schema).validate(document)
    assert document["schema_version"] == SCHEMA_VERSION
    assert document["machine"]["cores_logical"] >= 1 and document["machine"]["cpu_model"]
    # the interpreter the run's processes used, and how fast it ran a plain loop here
    assert document["machine"]["python_executable"] == os.path.realpath(sys.executable)
    assert document["machine"]["python_loop_ns"] > 0
    # and the file system the jobs' directories were made on
    machine = document["machine"]
    assert machine["file_system"].split()[0] and machine["slow_inode_reuse"] in (True, False)


def test_every_job_finished_and_figures_are_there(bench_dir: Path) -> None:
    result = load(bench_dir / "bench.json")
    assert [s.name for s in result.scenarios] == ["serial", "mpi"]
    for scenario in result.scenarios:
        (trial,) = scenario.trials
        assert trial.final_states == {"JOB_FINISHED": JOBS}
        for figure in (
            "jobs_per_s",
            "run_jobs_per_s",
            "ratio_run",
            "ratio_overall",
            "queue_p50_ms",
            "run_p50_ms",
            "slot_utilization",
            "server_peak_rss_mb",
            "launcher_peak_rss_mb",
            "cpu_ms_per_job_server",
            "cpu_ms_per_job_tolu",
            "baseline_pool_cpu_ms_per_task",
            "ratio_cpu_start_vs_pool",
            "ratio_run_vs_pool_workdirs",
            "ratio_cpu_start_vs_pool_workdirs",
            "fs_workdir_us",
        ):
            value = trial.figures[figure]
            assert value is not None and value > 0, figure
        # how busy the machine was when the trial began, whatever the bench
        busy = trial.figures["load_1min_at_start"]
        assert busy is not None and busy >= 0 and scenario.figure_info["load_1min_at_start"].unit == "load"
        names = {b.name for b in trial.baselines}
        pools = {"process_pool", "process_pool_workdirs"}
        assert names == (pools | {"mpiexec_loop"} if scenario.name == "mpi" else pools)
        assert [p.name for p in trial.phases] == ["create", "startup", "run", "overall"]
        assert scenario.summary["ratio_run"].median == trial.figures["ratio_run"]
        assert trial.figures["run_done_p50_ms"] is not None and trial.figures["dispatch_p50_ms"] is not None
        verdict = {v.figure: v for v in scenario.verdicts}
        assert verdict["ratio_run"].median == trial.figures["ratio_run"]
        assert verdict["cpu_ms_per_job_server"].aim == "<= 0.06"
        # every tolu process announced its role; the server and the launcher's are there
        roles = {(p.root, p.role, p.source) for p in trial.processes}
        assert ("server", "server", "announced") in roles
        assert {p.root for p in trial.processes} == {"server", "launcher-0"}
        assert all(p.source != "command line" for p in trial.processes), trial.processes
        assert trial.figures["jobs_failed"] == 0
    assert result.check is not None and result.check.aims == sum(len(s.verdicts) for s in result.scenarios)


def test_csv_has_one_row_per_job(bench_dir: Path) -> None:
    with (bench_dir / "bench.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 2 * JOBS
    for row in rows:
        assert row["final_state"] == "JOB_FINISHED"
        assert float(row["created_s"]) <= float(row["running_s"]) <= float(row["final_s"])


def test_report_is_self_contained(bench_dir: Path) -> None:
    html = (bench_dir / "report.html").read_text()
    assert html.count("data:image/png;base64,") >= 4
    assert 'src="http' not in html and "<script src" not in html
    for text in ("throughput over time", "jobs running", "queue latency", "Machine", "<th>verdict</th>"):
        assert text in html
    assert "✓" in html or "✗" in html


def test_compare_flags_a_ratio_regression(bench_dir: Path, tmp_path: Path) -> None:
    current = load(bench_dir / "bench.json")
    better = json.loads((bench_dir / "bench.json").read_text())
    for scenario in better["scenarios"]:
        for name, stat in scenario["summary"].items():
            if name.startswith("ratio_") and stat["median"]:
                stat["median"] *= 1.5
    before = tmp_path / "before.json"
    before.write_text(json.dumps(better))
    assert compare(current, before, fail_on=10).regressed
    assert not compare(current, bench_dir / "bench.json", fail_on=10).regressed


def test_a_bad_task_is_one_line_before_anything_starts(tmp_path: Path) -> None:
    out = tmp_path / "out"
    argv = [
        sys.executable, "-m", "runner.cli.main", "bench", "throughput", "--task", "bogus", "--out", str(out),
    ]  # fmt: skip
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 1
    assert done.stderr.splitlines() == ["Error: --task 'bogus': expected true, sleep:SECONDS or python-noop"]
    assert not out.exists()


def test_the_runs_work_without_the_cli(tmp_path: Path) -> None:
    """harness.bench.runs is the engine's entry for Python callers; the CLI only parses and prints."""
    out = tmp_path / "api"
    settings = runs.RunSettings(argv=["test"], out_dir=out)
    outcome = runs.api(settings, jobs=20, batch=10, table_jobs=40, pages=2)
    assert outcome.json_path == out / "bench.json" and outcome.report_path.is_file()
    (scenario,) = outcome.result.scenarios
    assert scenario.name == "api-sqlite" and scenario.trials[0].figures["table_jobs"] == 40
    assert outcome.result.argv == ["test"]
    assert (out / "logs").is_dir(), "the server log is kept beside the results"


def test_committed_schema_matches_the_models() -> None:
    assert json.loads(SCHEMA_FILE.read_text()) == json_schema(), (
        "harness/bench/bench.schema.json is stale: regenerate it with "
        "python -c 'from harness.bench.schema import *; SCHEMA_FILE.write_text(json_schema_text())'"
    )


def test_bench_api_small(tmp_path: Path) -> None:
    out = tmp_path / "api"
    argv = [
        sys.executable, "-m", "runner.cli.main", "bench", "api",
        "--jobs", "300", "--batch", "100", "--table-jobs", "600", "--pages", "5", "--out", str(out),
    ]  # fmt: skip
    done = subprocess.run(argv, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, (
        f"{argv} exited {done.returncode}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    )
    schema = json.loads((out / "bench.schema.json").read_text())
    jsonschema.Draft202012Validator(schema).validate(json.loads((out / "bench.json").read_text()))
    (scenario,) = load(out / "bench.json").scenarios
    (trial,) = scenario.trials
    assert scenario.name == "api-sqlite"
    assert trial.notes[0].startswith("300 of 300 jobs went through acquire-and-complete")
    assert trial.figures["table_jobs"] == 600
    assert len(trial.raw["page_ms"]) == 5
    cpu = trial.figures["cycle_server_cpu_ms_per_job"]
    assert cpu is not None and cpu > 0
    assert [(p.root, p.role) for p in trial.processes] == [("server", "server")]
    assert any(v.figure == "create_jobs_per_s" and v.aim == ">= 20000" for v in scenario.verdicts)
    assert [p.name for p in trial.phases] == ["create", "acquire-and-complete", "fill table"]
    assert "page latency" in (out / "report.html").read_text()


def test_several_launchers_of_several_nodes_share_one_server(tmp_path: Path) -> None:
    """2 launchers x 2 made-up nodes x 1 slot: serial mode's coordinator and worker ranks by role."""
    out = tmp_path / "out"
    argv = [
        sys.executable, "-m", "runner.cli.main", "bench", "throughput", "--mode", "serial",
        "--launchers", "2", "--nodes", "2", "--workers", "1", "--jobs", "60", "--task", "sleep:0.2",
        "--baseline-jobs", "8", "--out", str(out),
    ]  # fmt: skip
    done = subprocess.run(argv, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, (
        f"{argv} exited {done.returncode}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    )
    result = load(out / "bench.json")
    (scenario,) = result.scenarios
    (trial,) = scenario.trials
    assert scenario.parameters["launchers"] == 2 and scenario.parameters["nodes"] == 2
    assert "2 launchers x 2 nodes x 1 slots" in scenario.description
    assert trial.final_states == {"JOB_FINISHED": 60}
    assert {p.root for p in trial.processes} == {"server", "launcher-0", "launcher-1"}
    assert trial.baselines[0].workers == 4, "the baseline runs at the launchers' total concurrency"
    # per launcher: rank 0 and one worker rank per node, both coordinators (rank 0 moves
    # every job, a worker rank its node's), one spawner per node (1 slot) starting the
    # tasks, mpiexec and a proxy per node
    roles = [(p.root, p.role) for p in trial.processes if p.source == "announced"]
    for root in ("launcher-0", "launcher-1"):
        assert roles.count((root, "coordinator")) == 3 and roles.count((root, "starter")) == 2, roles
    assert trial.figures["processes_coordinator"] == 6 and trial.figures["processes_starter"] == 4
    for figure in ("cpu_ms_per_job_coordinator", "cpu_ms_per_job_starter", "server_cpu_share"):
        value = trial.figures[figure]
        assert value is not None and value > 0, figure
    utilization = trial.figures["slot_utilization"]
    assert utilization is not None and 0 < utilization <= 1
    # sleep:0.2 has a slot-utilization aim; its verdict is whatever this machine gave
    assert any(v.figure == "slot_utilization" and v.aim == ">= 0.9" for v in scenario.verdicts)


def test_a_schema_1_0_file_still_loads_for_compare(bench_dir: Path, tmp_path: Path) -> None:
    """1.1 only added fields: a bench.json written before them is still an earlier run to compare with."""
    document = json.loads((bench_dir / "bench.json").read_text())
    document["schema_version"] = "1.0"
    document.pop("check")
    for scenario in document["scenarios"]:
        scenario.pop("verdicts")
        for trial in scenario["trials"]:
            trial.pop("processes")
            trial.pop("chaos")
            for baseline in trial["baselines"]:
                baseline.pop("cpu_s")
    old = tmp_path / "old.json"
    old.write_text(json.dumps(document))
    assert load(old).schema_version == "1.0"
    comparison = compare(load(bench_dir / "bench.json"), old, fail_on=10)
    assert not comparison.regressed and comparison.rows


def test_the_completion_poll_waits_half_the_time_left_within_its_bounds() -> None:
    # nothing final yet: no rate to go by
    assert next_poll(0, 30_000, 3.0) == POLL_MIN_S
    # 3,000 of 30,000 in 1.5 s: 13.5 s left, the next count in 6.75 s
    assert next_poll(3_000, 30_000, 1.5) == pytest.approx(6.75)
    # a million jobs: never more than POLL_MAX_S between looks (progress, a dead launcher)
    assert next_poll(1_000, 1_000_000, 1.0) == POLL_MAX_S
    # near the end: the last count comes within POLL_MIN_S of it
    assert next_poll(29_900, 30_000, 15.0) == POLL_MIN_S
