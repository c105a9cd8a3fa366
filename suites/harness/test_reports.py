"""The HTML reports (test run, bench, integration pipeline) from the shared jinja2 templates.

Every report is one self-contained file, and whatever a run puts into it (test ids, failure
messages, job output, command lines, names) is shown as text, never interpreted as HTML.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import pytest

from harness.bench import report as bench_report
from harness.bench.schema import (
    Baseline,
    BenchResult,
    CompareRow,
    Comparison,
    FigureInfo,
    Machine,
    Phase,
    Scenario,
    Series,
    Stat,
    Trial,
)
from harness.bench.throughput import JobRow
from harness.pipeline import report as pipeline_report
from harness.report import printed_run_dir

SCRIPT = "<script>alert('x')</script>"
ESCAPED_SCRIPT = "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;"
EXTERNAL = re.compile(r"""(src|href)=["']?(https?:)?//""")


def assert_self_contained(html: str) -> None:
    assert html.startswith("<!doctype html>")
    assert "<style>" in html
    assert not EXTERNAL.search(html), "no external resources"
    assert "<script" not in html


# ------------------------------------------------------------------------------ test run report

HOSTILE = f'''
import pytest

@pytest.mark.parametrize("name", ["<b>bold</b>"])
def test_fails(name):
    assert False, "{SCRIPT}"

@pytest.mark.skip(reason="needs <img src=x onerror=alert(1)>")
def test_skipped():
    pass
'''


def test_run_report_escapes_test_ids_messages_and_reasons(tree: pytest.Pytester) -> None:
    tree.makepyfile(**{"suites/test_hostile.py": HOSTILE})
    result = tree.runpytest()
    result.assert_outcomes(failed=1, skipped=1)
    html = (printed_run_dir(result.stdout.lines) / "report.html").read_text()
    assert_self_contained(html)
    assert "test_fails[&lt;b&gt;bold&lt;/b&gt;]" in html
    assert "<b>bold</b>" not in html
    assert "alert(&#39;x&#39;)" in html  # inside the failure's traceback, as text
    assert "needs &lt;img src=x onerror=alert(1)&gt;" in html
    assert "<img src=x" not in html


# ------------------------------------------------------------------------------ bench report


def bench_result(*, name: str = "serial", note: str = "two trials were dropped") -> BenchResult:
    """A small but complete bench.json: every part of the report has something to show."""
    started = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
    series = {
        "completions_per_s": Series(t=[0.0, 1.0, 2.0, 3.0], values=[0.0, 40.0, 55.0, 50.0]),
        "running": Series(t=[0.0, 1.0, 2.0, 3.0], values=[0.0, 2.0, 2.0, 0.0]),
    }
    trial = Trial(
        index=1,
        started_at=started,
        seconds=3.5,
        phases=[
            Phase(name="create", start_s=0.0, end_s=0.2, jobs=100, seconds=0.2, jobs_per_s=500.0),
            Phase(name="run", start_s=0.5, end_s=3.0, jobs=100, seconds=2.5, jobs_per_s=40.0),
        ],
        figures={"jobs_per_s": 28.6, "ratio_run": 0.83},
        baselines=[
            Baseline(
                name="process_pool",
                description="ProcessPoolExecutor(2) spawning the task",
                command=["/bin/true", "a b"],
                workers=2,
                jobs=50,
                seconds=1.0,
                jobs_per_s=50.0,
            )
        ],
        raw={"page_ms": [3.0, 4.5, 5.0]},
        series=series,
        final_states={"JOB_FINISHED": 100},
        notes=[f"trial note {note}"],
        requests_by_route={"POST /sessions/{id}/acquire": 12},
    )
    scenario = Scenario(
        name=name,
        description="serial mode: one mpi4py launcher, 2 ranks",
        parameters={"jobs": 100, "workers": 2},
        figure_info={
            "jobs_per_s": FigureInfo(unit="jobs/s", better="higher", description="overall rate"),
            "ratio_run": FigureInfo(unit="ratio", better="higher", description="vs baseline", aim=">= 0.8"),
        },
        trials=[trial],
        summary={
            "jobs_per_s": Stat(min=28.6, median=28.6, max=28.6, values=[28.6]),
            "ratio_run": Stat(min=0.83, median=0.83, max=0.83, values=[0.83]),
            "baseline_pool_jobs_per_s": Stat(min=50.0, median=50.0, max=50.0, values=[50.0]),
            "empty": Stat(min=None, median=None, max=None, values=[None]),
        },
    )
    machine = Machine(
        hostname="node-1",
        cpu_model="Some CPU @ 2.0GHz",
        cores_logical=2,
        cores_physical=1,
        memory_bytes=8 * 2**30,
        memory_available_bytes=4 * 2**30,
        os="Debian 12",
        kernel="6.1",
        python="3.11.2",
        python_implementation="CPython",
        python_executable="/opt/python/bin/python3.11",
        python_loop_ns=41.7,
        mpi="MPICH 4.2",
        mpiexec="/usr/bin/mpiexec",
        database="sqlite",
        database_version="3.40",
        tolu_version="0.1.0",
        git_commit="0123456789abcdef",
        load_average=[0.5, 0.25, 0.125],
    )
    comparison = Comparison(
        baseline_path="old/bench.json",
        fail_on_percent=10.0,
        rows=[
            CompareRow(
                scenario=name,
                figure="ratio_run",
                before=0.9,
                after=0.83,
                change_percent=-7.8,
                regressed=False,
            ),
            CompareRow(
                scenario=name,
                figure="ratio_overall",
                before=0.9,
                after=0.5,
                change_percent=-44.4,
                regressed=True,
            ),
        ],
        regressed=True,
        notes=[f"parameters differ: {note}"],
    )
    return BenchResult(
        command="throughput",
        argv=["tolu", "bench", "throughput", "--jobs", "100"],
        created_at=started,
        seconds=12.5,
        machine=machine,
        parameters={"jobs": 100},
        scenarios=[scenario],
        notes=[note],
        comparison=comparison,
        csv="bench.csv",
    )


def bench_rows(name: str = "serial") -> list[JobRow]:
    return [
        JobRow(name, 1, i, created_s=0.0, running_s=0.1 * i, done_s=0.1 * i + 0.05, final_s=0.11 * i + 0.06,
               final_state="JOB_FINISHED")
        for i in range(1, 21)
    ]  # fmt: skip


def test_bench_report_is_self_contained_with_every_part() -> None:
    html = bench_report.render(bench_result(), bench_rows())
    assert_self_contained(html)
    assert html.count('src="data:image/png;base64,') == 5
    for text in (
        "Machine",
        "Compared with old/bench.json",
        "REGRESSED",
        "trial 1",
        "final states: JOB_FINISHED: 100",
        "CPython 3.11.2 (/opt/python/bin/python3.11, 42 ns per loop step)",
    ):
        assert text in html
    for alt in (
        "throughput over time",
        "jobs running over time",
        "queue latency histogram",
        "page latency histogram",
    ):
        assert f'alt="{alt}"' in html
    assert "<code>/bin/true &#39;a b&#39;</code>" in html  # the baseline's command, shell-quoted


def test_bench_report_escapes_names_and_notes() -> None:
    html = bench_report.render(bench_result(name="a&b <i>", note=SCRIPT), bench_rows("a&b <i>"))
    assert_self_contained(html)
    assert ESCAPED_SCRIPT in html
    assert "<h2>a&amp;b &lt;i&gt;</h2>" in html
    assert "<i>" not in html


# ------------------------------------------------------------------------------ pipeline report


def pipeline_report_data(*, detail: str, finding: str) -> dict[str, Any]:
    return {
        "schema": pipeline_report.SCHEMA,
        "version": pipeline_report.REPORT_VERSION,
        "run_id": "integration-x",
        "ok": False,
        "options": {"server": "process", "scheduler": "local", "faults": ["job-fails"]},
        "server_url": "http://127.0.0.1:8000",
        "site_id": 1,
        "failed_step": "step 9 (report failures): 1 finding(s)",
        "steps": [
            {"number": 1, "name": "build the wheel", "ok": True, "seconds": 1.25, "detail": "tolu.whl"},
            {"number": 9, "name": "report failures", "ok": False, "seconds": 0.5, "detail": detail},
        ],
        "findings": [{"kind": "unexpected-failure", "message": finding, "where": "job 3"}],
        "planted_faults": {"job-fails": "a job that fails"},
    }


def test_pipeline_report_shows_steps_findings_and_jobs() -> None:
    jobs = [{"state": "JOB_FINISHED", "events": []}, {"state": "FAILED", "events": []}]
    html = pipeline_report.render(pipeline_report_data(detail="1 finding", finding="job 3 FAILED"), jobs)
    assert_self_contained(html)
    assert "tolu integration run integration-x: FAILED" in html
    assert "step 9 (report failures): 1 finding(s)" in html
    assert "planted faults: job-fails" in html
    assert "<b>unexpected-failure</b>: job 3 FAILED" in html
    assert "FAILED 1, JOB_FINISHED 1" in html
    assert '<tr class="bad"><td>9</td><td>report failures</td><td>FAILED</td>' in html


def test_pipeline_report_escapes_job_output_and_findings() -> None:
    output = f"output site/data/1/job.out: {SCRIPT} | <img src=x onerror=alert(1)>"
    html = pipeline_report.render(pipeline_report_data(detail=output, finding=output), [])
    assert_self_contained(html)
    assert html.count(ESCAPED_SCRIPT) == 2
    assert "<img src=x" not in html
    assert "no job data" in html
