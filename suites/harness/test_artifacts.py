"""Every run leaves artifacts/<run-id>/: junit.xml, report.json (valid against its schema), report.html."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET

import jsonschema
import pytest

from harness.artifacts import scan_errors
from harness.report import SCHEMA_VERSION, printed_run_dir, read, records_by_name, schema, validate

MIXED = """
import pytest

def test_passes():
    pass

def test_fails():
    assert 1 + 1 == 3, "arithmetic is broken"

@pytest.mark.requires("unobtanium")
def test_needs_unobtanium():
    pass

@pytest.mark.xfail(reason="known bug 12")
def test_known_bug():
    assert False
"""

LOGS = """
import pytest

LOG = "2026-01-01 INFO server: started\\n2026-01-01 ERROR server: database is on fire\\n"

def test_unexpected_error_line(tolu_evidence, tmp_path):
    path = tmp_path / "agent.log"
    path.write_text(LOG)
    tolu_evidence.add_log("agent", path)

@pytest.mark.expect_errors(r"database is on fire")
def test_expected_error_line(tolu_evidence, tmp_path):
    path = tmp_path / "agent.log"
    path.write_text(LOG)
    tolu_evidence.add_log("agent", path)
"""


def test_passing_run_writes_artifacts(tree: pytest.Pytester) -> None:
    tree.makepyfile(**{"suites/site/test_ok.py": "def test_a(): pass\ndef test_b(): pass\n"})
    result = tree.runpytest()
    result.assert_outcomes(passed=2)
    run_dir = printed_run_dir(result.stdout.lines)
    assert run_dir.parent == tree.path / "artifacts"
    assert re.fullmatch(r"\d{8}T\d{6}Z-[0-9a-f]{6}", run_dir.name)
    assert {"junit.xml", "report.json", "report.html"} <= {p.name for p in run_dir.iterdir()}
    junit = ET.parse(run_dir / "junit.xml").getroot()
    assert sum(int(s.get("tests", 0)) for s in junit.iter("testsuite")) == 2
    report = read(printed_run_dir(result.stdout.lines))
    validate(report)
    assert report["schema_version"] == SCHEMA_VERSION
    assert report["run_id"] == run_dir.name
    assert report["summary"] | {"total": 2} == {
        "total": 2,
        "passed": 2,
        "failed": 0,
        "error": 0,
        "skipped": 0,
        "xfailed": 0,
        "xpassed": 0,
    }
    assert report["location"]["name"] == "workstation"
    assert report["location"]["reason"].startswith("default: ")
    assert report["environment"]["python"].count(".") == 2
    assert report["environment"]["tolu"]
    assert not report["flagged"]
    assert all(t["markers"] == ["site"] for t in report["tests"])
    result.stdout.fnmatch_lines([f"tolu report: {run_dir / 'report.html'}"])


def test_failing_run_writes_artifacts_with_reasons(tree: pytest.Pytester) -> None:
    tree.makepyfile(**{"suites/server/test_mixed.py": MIXED})
    result = tree.runpytest("--artifacts-dir", "out")
    result.assert_outcomes(passed=1, failed=1, skipped=1, xfailed=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    run_dir = printed_run_dir(result.stdout.lines)
    assert run_dir.parent == tree.path / "out"
    report = read(printed_run_dir(result.stdout.lines))
    validate(report)
    tests = records_by_name(report)
    assert tests["test_fails"]["outcome"] == "failed"
    assert "arithmetic is broken" in tests["test_fails"]["longrepr"]
    assert tests["test_needs_unobtanium"]["outcome"] == "skipped"
    assert tests["test_needs_unobtanium"]["skip_reason"].startswith("requires unobtanium: ")
    assert tests["test_known_bug"]["outcome"] == "xfailed"
    assert tests["test_passes"]["markers"] == ["server"]
    assert set(tests["test_fails"]["phases"]) == {"setup", "call", "teardown"}
    assert report["exitstatus"] == 1
    html = (run_dir / "report.html").read_text()
    # failures first, with their message; skips listed with the reason
    sections = ["Failures (1)", "Skipped and expected failures (2)", "Per-test timings"]
    assert [html.index(s) for s in sections] == sorted(html.index(s) for s in sections)
    assert "arithmetic is broken" in html
    assert "requires unobtanium" in html


def test_report_html_is_self_contained(tree: pytest.Pytester) -> None:
    body = "".join(f"def test_{i}(): pass\n" for i in range(6))
    tree.makepyfile(**{"suites/test_many.py": body})
    result = tree.runpytest()
    html = (printed_run_dir(result.stdout.lines) / "report.html").read_text()
    assert html.startswith("<!doctype html>")
    assert "<style>" in html
    assert 'src="data:image/png;base64,' in html  # the timings plot, inline
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", html), "no external resources"


def test_schema_rejects_a_broken_report(tree: pytest.Pytester) -> None:
    tree.makepyfile(**{"suites/test_ok.py": "def test_a(): pass\n"})
    report = read(printed_run_dir(tree.runpytest().stdout.lines))
    validate(report)
    broken = dict(report)
    del broken["run_id"]
    with pytest.raises(jsonschema.ValidationError, match="'run_id' is a required property"):
        validate(broken)
    skipped_without_reason = json.loads(json.dumps(report))
    skipped_without_reason["tests"][0].update(outcome="skipped", skip_reason=None)
    with pytest.raises(jsonschema.ValidationError):
        validate(skipped_without_reason)
    jsonschema.Draft202012Validator.check_schema(schema())


def test_unexpected_error_lines_flag_the_run(tree: pytest.Pytester) -> None:
    tree.makepyfile(**{"suites/test_logs.py": LOGS})
    result = tree.runpytest()
    result.assert_outcomes(passed=2)
    assert result.ret == pytest.ExitCode.OK  # flagged, not failed
    result.stdout.fnmatch_lines(
        [
            "*tolu: unexpected ERROR lines in collected logs*",
            "  suites/test_logs.py::test_unexpected_error_line: logs/agent.log:2: 2026-01-01 ERROR server: "
            "database is on fire",
        ]
    )
    report = read(printed_run_dir(result.stdout.lines))
    validate(report)
    assert report["flagged"] is True
    assert report["log_errors"]["unexpected"] == 1
    expected = [e["expected"] for e in report["log_errors"]["entries"]]
    assert sorted(expected) == [False, True]
    test = records_by_name(report)["test_unexpected_error_line"]
    assert (
        (printed_run_dir(result.stdout.lines) / test["evidence"]["dir"] / "logs" / "agent.log")
        .read_text()
        .startswith("2026")
    )
    assert "PASSED, but flagged" in (printed_run_dir(result.stdout.lines) / "report.html").read_text()


def test_xdist_workers_results_are_merged(tree: pytest.Pytester) -> None:
    tree.makepyfile(**{"suites/test_logs.py": LOGS, "suites/server/test_mixed.py": MIXED})
    result = tree.runpytest_subprocess("-n", "2")
    result.assert_outcomes(passed=3, failed=1, skipped=1, xfailed=1)
    run_dirs = [p for p in (tree.path / "artifacts").iterdir()]
    assert len(run_dirs) == 1, "workers share the controller's run folder"
    report = read(printed_run_dir(result.stdout.lines))
    validate(report)
    assert report["summary"]["total"] == 6
    assert {t["worker"] for t in report["tests"]} <= {"gw0", "gw1"}
    assert report["log_errors"]["unexpected"] == 1  # evidence written by a worker, merged
    assert report["environment"]["xdist_workers"] == 2


@pytest.mark.parametrize("option", ["--collect-only", "--markers", "--fixtures"])
def test_runs_that_run_no_tests_leave_no_folder(tree: pytest.Pytester, option: str) -> None:
    tree.makepyfile(**{"suites/test_ok.py": "def test_a(): pass\n"})
    result = tree.runpytest(option)
    assert result.ret == pytest.ExitCode.OK
    assert not (tree.path / "artifacts").exists()


@pytest.mark.parametrize(
    ("line", "is_error"),
    [
        ("2026-11-22 19:01:41,574 ERROR runner.launcher: job 3 failed", True),
        ("ERROR:    Exception in ASGI application", True),
        ("[ERROR] agent: cannot reach server", True),
        ("ts=1 level=ERROR msg=boom", True),
        ("2026-11-22 CRITICAL runner.site: giving up", True),
        ("2026-11-22 INFO runner: 0 errors, NO_ERRORS flag, ERRORS_TOTAL=0", False),
        ("INFO: GET /jobs?state=RUN_ERROR 200", False),
    ],
)
def test_error_line_detection(line: str, is_error: bool) -> None:
    found = scan_errors(f"first line\n{line}\n", "x.log", [re.compile("job 3")])
    assert bool(found) is is_error
    if found:
        assert (found[0].file, found[0].line, found[0].text) == ("x.log", 2, line)
        assert found[0].expected is ("job 3" in line)


def test_an_error_line_names_the_exception_of_the_traceback_under_it() -> None:
    log = "\n".join([
        "INFO:     127.0.0.1 - \"POST /sessions/3/reports HTTP/1.1\" 500",
        "ERROR:    Exception in ASGI application",
        "Traceback (most recent call last):",
        '  File "/x/db.py", line 3, in write',
        "    conn.execute(stmt)",
        "psycopg.errors.DeadlockDetected: deadlock detected",
        "",
        "The above exception was the direct cause of the following exception:",
        "",
        "Traceback (most recent call last):",
        '  File "/x/app.py", line 9, in __call__',
        "sqlalchemy.exc.OperationalError: (psycopg.errors.DeadlockDetected) deadlock detected",
        "INFO:     127.0.0.1 - \"GET /jobs HTTP/1.1\" 200",
        "2026-11-22 19:01:41,574 ERROR runner.launcher: job 3 failed",
    ])  # fmt: skip
    asgi, job = scan_errors(log, "server.log", [])
    assert asgi.line == 2
    assert asgi.cause == (
        "sqlalchemy.exc.OperationalError: (psycopg.errors.DeadlockDetected) deadlock detected"
    )
    assert job.cause is None  # no traceback under it
