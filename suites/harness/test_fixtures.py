"""The server-side fixtures against a real server (one inner run, one server process)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from harness.fixtures_server import ServerHandle
from harness.report import printed_run_dir, read, records_by_name

HELLO = """
name: hello
description: Say hello
command_template: echo Hello, {name}!
parameters:
  name: world
"""

TESTS = """
import os

import yaml

from runner.client import Client


def test_client_is_a_fresh_logged_in_user(tolu_client, tolu_server):
    assert tolu_client.me().username.startswith("user-")
    assert tolu_client.jobs.filter() == []
    # subprocesses (the tolu CLI) find the same user through $TOLU_CONFIG
    assert Client.from_config(os.environ["TOLU_CONFIG"]).me().username == tolu_client.me().username
    assert tolu_server.database == "sqlite" and tolu_server.mode == "process"


def test_site_registered_with_apps_synced(tolu_site, tolu_client):
    settings = yaml.safe_load((tolu_site.path / "settings.yml").read_text())
    assert settings["site_id"] == tolu_site.id
    assert settings["server_url"] == tolu_client.url
    assert tolu_client.sites.get(tolu_site.id).path == str(tolu_site.path)
    assert sorted(tolu_site.apps) == ["hello"]
    assert (tolu_site.path / "apps" / "hello.yml").is_file()


def test_make_jobs_and_wait(tolu_site, make_jobs, tolu_client, wait_for_jobs):
    parents = make_jobs("hello", 2, tags={"run": "a"}, parameters=[{"name": "p1"}, {"name": "p2"}])
    (child,) = make_jobs("hello", parents=parents, resources={"num_nodes": 1, "ranks_per_node": 2})
    assert child.parents == [p.id for p in parents]
    assert child.ranks_per_node == 2
    assert [p.parameters for p in parents] == [{"name": "p1"}, {"name": "p2"}]
    assert str(child.state) == "AWAITING_PARENTS"
    done = wait_for_jobs(tolu_client, parents, ["PREPROCESSED"], timeout=10)
    assert [j.id for j in done] == [p.id for p in parents]


def test_wait_for_jobs_timeout_lists_stuck_jobs(tolu_site, make_jobs, tolu_client, wait_for_jobs):
    jobs = make_jobs("hello", 2, tags={"run": "stuck"})
    wait_for_jobs(tolu_client, jobs, ["JOB_FINISHED"], timeout=1)   # no launcher runs them
"""


def test_server_client_site_fixtures(tree: pytest.Pytester) -> None:
    apps = tree.path / "suites" / "site" / "apps"
    apps.mkdir(parents=True)
    (apps / "hello.yml").write_text(HELLO)
    tree.makepyfile(**{"suites/site/test_real.py": TESTS})
    result = tree.runpytest()
    result.assert_outcomes(passed=3, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*timeout after 1s: 2 of 2 jobs not in JOB_FINISHED (2 PREPROCESSED):",
            "  job * (PREPROCESSED) app=* workdir=* retries=0/3 tags=run=stuck",
            "  job * (PREPROCESSED) app=* workdir=* retries=0/3 tags=run=stuck",
        ]
    )
    report = read(printed_run_dir(result.stdout.lines))
    tests = records_by_name(report)
    assert report["environment"]["databases"] == ["sqlite"]
    # the whole server log is kept too; each test's evidence has its slice
    assert report["artifacts"]["server_logs"] == ["servers/server-main-sqlite-process.log"]
    # the failed test's evidence: server log slice, jobs with their state histories
    evidence = tests["test_wait_for_jobs_timeout_lists_stuck_jobs"]["evidence"]
    assert evidence["servers"][0]["database"] == "sqlite"
    assert evidence["jobs"]["count"] == 2
    assert evidence["jobs"]["states"] == {"PREPROCESSED": 2}
    jobs = json.loads(
        (printed_run_dir(result.stdout.lines) / evidence["dir"] / evidence["jobs"]["file"]).read_text()
    )
    assert [e["to"] for e in jobs[0]["events"]][-1] == "PREPROCESSED"
    assert Path(printed_run_dir(result.stdout.lines) / evidence["dir"] / "server.log").is_file()
    html = (printed_run_dir(result.stdout.lines) / "report.html").read_text()
    assert "job states over time" not in html or "data:image/png" in html
    assert html.count("<h2>Jobs</h2>") == 1


INTERRUPTED = """
import os
import signal


def test_interrupted(tolu_server):
    with open("server.pid", "w") as fh:
        fh.write(str(tolu_server.pid))
    # Python turns SIGINT into KeyboardInterrupt only if its parent did not ignore the
    # signal, and a run started with `&` from a script inherits it ignored: then the kill
    # below did nothing and the test passed. Ctrl-C's handler, whatever started us.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    os.kill(os.getpid(), signal.SIGINT)   # as if Ctrl-C was pressed mid-test
"""


def test_server_is_stopped_by_pid_when_the_run_is_interrupted(tree: pytest.Pytester) -> None:
    tree.makepyfile(**{"suites/site/test_interrupt.py": INTERRUPTED})
    result = tree.runpytest_subprocess()
    assert result.ret == pytest.ExitCode.INTERRUPTED
    pid = int((tree.path / "server.pid").read_text())
    assert pid > 0
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    # the interrupted run still leaves its report
    report = read(printed_run_dir(result.stdout.lines))
    assert report["exitstatus"] == pytest.ExitCode.INTERRUPTED


SLURM = """
def test_slurm(slurm):
    assert slurm.partitions and slurm.default_partition in slurm.partitions
    assert slurm.nodes >= 1 and slurm.cpus_per_node >= 1
"""


def test_slurm_fixture_where_slurm_is(tree: pytest.Pytester) -> None:
    tree.makepyfile(**{"suites/site/scheduler/test_s.py": SLURM})
    result = tree.runpytest()
    outcomes = result.parseoutcomes()
    if outcomes.get("skipped"):  # no answering Slurm here: skipped with the probe's reason
        result.stdout.fnmatch_lines(["SKIPPED*requires slurm: slurm: *"])
    else:
        result.assert_outcomes(passed=1)


EXISTING = """
def test_existing_server(tolu_server, tolu_client):
    assert tolu_server.mode == "url" and tolu_server.pid is None
    assert tolu_client.me().username.startswith("user-")
    print("DATABASE", tolu_server.database)
"""


def test_existing_server_by_url(tree: pytest.Pytester, tolu_server: ServerHandle) -> None:
    tree.makepyfile(**{"suites/api/test_e.py": EXISTING})
    result = tree.runpytest("-s", "--server", tolu_server.url)
    result.assert_outcomes(passed=1)  # one server: not parametrized over databases
    result.stdout.fnmatch_lines([f"*DATABASE {tolu_server.database}*"])
    unreachable = tree.runpytest("--server-url", "http://127.0.0.1:1")
    unreachable.assert_outcomes(errors=1)
    unreachable.stdout.fnmatch_lines(["*--server http://127.0.0.1:1: no tolu server answers*"])
