"""Batch scripts rendered from each scheduler's template: every value escaped, and they run."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from runner.models import BatchJob
from runner.platform.schedulers import UnsafeValue, get, names
from runner.platform.schedulers import register_scheduler as register
from runner.site.settings import SchedulerSettings

SCHEDULERS = ["local", "slurm", "pbs", "cobalt", "lsf"]
NASTY = "proj x'; touch /tmp/pwned-$USER; echo \"$(id)\" `id`"


def batch_job(**fields: object) -> BatchJob:
    now = datetime.now(UTC)
    base: dict[str, object] = dict(
        id=42, site_id=1, scheduler_id=None, project="", queue="", num_nodes=2, wall_time_min=30,
        job_mode="mpi", filter_tags={}, options={}, state="pending_submission", status_info={},
        start_time=None, end_time=None, created_at=now, updated_at=now,
    )
    base.update(fields)
    return BatchJob.model_validate(base)


def test_registry_lists_the_builtins_and_rejects_unknown_and_duplicates() -> None:
    from runner.registry import DuplicateName, UnknownName

    assert set(SCHEDULERS) <= set(names())
    with pytest.raises(UnknownName, match="known: cobalt, local, lsf, pbs, slurm"):
        get("nope")
    slurm_cls = get("slurm")
    with pytest.raises(DuplicateName, match="registered twice"):
        register("slurm")(type("Other", (slurm_cls,), {}))


@pytest.mark.parametrize("name", SCHEDULERS)
def test_values_are_escaped_and_script_is_valid_bash(name: str, tmp_path: Path) -> None:
    sched = get(name)(tmp_path / "batch dir")
    options = {"_origin": "autoscaler", "constraint": "a&b c"}
    bj = batch_job(project=NASTY, queue="debug queue", options=options)
    argv = ["tolu", "launcher", "--tag", NASTY]
    text = sched.render_script(bj, argv, SchedulerSettings())
    assert "{{" not in text
    assert shlex.join(argv) in text
    assert "_origin" not in text  # tolu metadata, not a scheduler option
    if name != "local":
        assert shlex.quote(NASTY) in text and shlex.quote("debug queue") in text
        assert shlex.quote("a&b c") in text or shlex.quote("constraint=a&b c") in text
    # every directive/comment line parses as one shell word list without executing anything
    for line in text.splitlines():
        if line.startswith("#") and not line.startswith("#!"):
            shlex.split(line[1:])
    subprocess.run(["bash", "-n"], input=text, text=True, check=True)


@pytest.mark.parametrize("name", SCHEDULERS)
def test_unsafe_values_are_refused(name: str, tmp_path: Path) -> None:
    sched = get(name)(tmp_path)
    with pytest.raises(UnsafeValue, match="newline"):
        sched.render_script(batch_job(), ["tolu", "launcher", "--tag", "a=b\nrm -rf /"], SchedulerSettings())
    if name != "local":
        with pytest.raises(UnsafeValue):
            sched.render_script(batch_job(project="a\nb"), ["tolu"], SchedulerSettings())
        with pytest.raises(UnsafeValue, match="option name"):
            sched.render_script(batch_job(options={"x; y": "1"}), ["tolu"], SchedulerSettings())


@pytest.mark.parametrize("name", SCHEDULERS)
def test_rendered_script_runs_the_launcher_and_writes_its_exit_code(name: str, tmp_path: Path) -> None:
    """Run the script with bash as the scheduler would (its job-id variable set)."""
    sched = get(name)(tmp_path / "batch")
    record = tmp_path / "argv.json"
    program = f"import json, sys; json.dump(sys.argv[1:], open({str(record)!r}, 'w')); sys.exit(3)"
    argv = [sys.executable, "-c", program, NASTY, "two words", "--wall-time-min", "30"]
    script = sched.write_script(batch_job(), argv, SchedulerSettings(prelude=["export TOLU_PRELUDE=1"]))
    variable = sched.job_id_shell.strip("${}")
    env = {**os.environ, variable: "job-77"}
    done = subprocess.run(["bash", str(script)], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 3, done.stderr
    assert json.loads(record.read_text()) == [NASTY, "two words", "--wall-time-min", "30"]
    assert (tmp_path / "batch" / "job-77.ec").read_text().strip() == "3"
    status = sched.from_exit_code_file("job-77")
    assert status.exit_code == 3 and status.state.value == "failed"
