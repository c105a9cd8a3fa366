"""The integration pipeline catches what it is there to catch.

A pipeline that stays green on a planted fault is a bug in the pipeline: each fault in
harness.pipeline.faults.FAULTS is planted in one run, and every one must show up in its report.
The clean run (no faults) is what ./ci/test runs after the suites; a short clean run is here too
so that `pytest -m integration` alone proves the pipeline can pass.
"""

from __future__ import annotations

import json

import jsonschema
import pytest

from harness.pipeline import report as pipeline_report
from harness.pipeline.faults import FAULTS
from harness.pipeline.options import Options
from harness.pipeline.pipeline import run_pipeline


def _options(config: pytest.Config, **kw: object) -> Options:
    # artifacts/<run-id>/ of the repository: they outlive pytest's rotating tmp dirs.
    # A fresh venv that sees this environment's dependencies: the wheel is still built and
    # installed, without re-downloading matplotlib & co. for every run.
    return Options(
        server="process",
        scheduler="local",
        artifacts=config.rootpath / "artifacts",
        deadline_sec=240,
        shared_deps=True,
        **kw,  # type: ignore[arg-type]
    )


@pytest.mark.expect_errors(r".*")
def test_every_planted_fault_is_reported(pytestconfig: pytest.Config) -> None:
    lines: list[str] = []
    result = run_pipeline(_options(pytestconfig, faults=tuple(FAULTS)), out=lines.append)
    output = "\n".join(lines)
    assert not result.ok, f"the pipeline stayed green with planted faults:\n{output}"
    kinds = {f.kind for f in result.findings}
    messages = "\n".join(f.message for f in result.findings)

    # job-fails: the exitcode job with code 7 is reported as an unexpected failure
    unexpected = [f for f in result.findings if f.kind == "unexpected-failure"]
    assert unexpected, f"planted job failure not reported:\n{messages}"
    # ...and the job that is MEANT to fail (code 3) is not reported
    assert all("'expect': 'fail'" not in f.message for f in unexpected), messages
    # empty-transfer: the misrouted stage-out is caught by the destination check
    assert "transfer" in kinds, f"planted transfer fault not reported:\n{messages}"
    assert any("out-0.txt" in f.message and "does not exist" in f.message for f in result.findings)
    # agent-error: the ERROR logged inside the agent
    assert any(
        f.kind == "error-log" and "planted fault: noisy postprocess hook" in f.message
        for f in result.findings
    ), messages
    # kill-launcher: the launcher's loss is visible (jobs timed out / batch job failed)
    assert kinds & {"lost-launcher", "batch-failed", "timeout"}, f"killed launcher not reported:\n{messages}"

    # the report says the same, for a person
    report = json.loads((result.out_dir / "report.json").read_text())
    assert report["ok"] is False
    assert sorted(report["planted_faults"]) == sorted(FAULTS)
    assert "FAILED" in (result.out_dir / "report.html").read_text()
    assert "integration run FAILED" in output
    # a failed run is published too, red: the server counted its failures
    published = result.steps[-1]
    assert (published.number, published.ok) == (12, True), output
    assert published.detail.endswith(": pipeline failed"), published.detail


def test_clean_run_passes_and_leaves_a_report(pytestconfig: pytest.Config) -> None:
    lines: list[str] = []
    result = run_pipeline(_options(pytestconfig), out=lines.append)
    output = "\n".join(lines)
    assert result.ok, output
    assert [s.number for s in result.steps] == list(range(1, 13)), output
    for name in ("report.json", "report.html", "jobs.json", "batch_jobs.json", "throughput.csv"):
        assert (result.out_dir / name).is_file(), name
    report = json.loads((result.out_dir / "report.json").read_text())
    jsonschema.Draft202012Validator(json.loads(pipeline_report.SCHEMA_FILE.read_text())).validate(report)
    # published to the server it tested as its site, read back, counted green
    assert result.steps[-1].name == "publish the run to the server", output
    assert result.steps[-1].detail.endswith(": pipeline passed"), output
    jobs = json.loads((result.out_dir / "jobs.json").read_text())
    assert jobs and all(job["events"] for job in jobs)
    assert (result.out_dir / "logs" / "log" / "agent.log").is_file()
