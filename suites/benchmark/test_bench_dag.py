"""`tolu bench dag` end to end (small N): one request creates every instance's jobs, the
files it promises are there and valid. Behaviour only: nothing here asserts a speed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jsonschema

from harness.bench.cli import DAG_KEYS
from harness.bench.schema import load

INSTANCES = 20
NODES = 5


def test_bench_dag_creates_every_instance_in_one_run(tmp_path: Path) -> None:
    out = tmp_path / "out"
    argv = [
        sys.executable, "-m", "runner.cli.main", "bench", "dag",
        "--instances", str(INSTANCES), "--nodes", str(NODES), "--out", str(out),
    ]  # fmt: skip
    done = subprocess.run(argv, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, (
        f"{argv} exited {done.returncode}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    )

    document = json.loads((out / "bench.json").read_text())
    jsonschema.Draft202012Validator(json.loads((out / "bench.schema.json").read_text())).validate(document)
    result = load(out / "bench.json")
    (scenario,) = result.scenarios
    assert scenario.name == "dag-sqlite"
    (trial,) = scenario.trials
    # nothing is launched: the heads (nothing to stage in) wait to run, the others for their parents
    assert trial.final_states == {"PREPROCESSED": INSTANCES, "AWAITING_PARENTS": INSTANCES * (NODES - 1)}
    assert [(p.name, p.jobs) for p in trial.phases] == [("run", INSTANCES * NODES)]
    for figure in DAG_KEYS:
        value = trial.figures[figure]
        assert value is not None and value > 0, figure
    (note,) = trial.notes
    assert note.endswith(f": {INSTANCES} instances, {INSTANCES * NODES} jobs in one request"), note
    assert (out / "report.html").exists()
