"""The everyday commands against a real server and a real launcher: status, whoami,
logout, job wait/cancel/logs, newest-first listing, --watch and -f, event/transfer/session
ls, site rm, app rm, --json, and tolu launcher's summary line."""

from __future__ import annotations

import json
import re
import signal
from pathlib import Path

import pytest
from cli_helpers import background, make_site, ok, one_error, output_shows, run

from runner.client import Client
from runner.states import JobState

S = JobState


@pytest.fixture
def site_dir(tolu_client: Client, tmp_path: Path) -> Path:
    return make_site(tolu_client, tmp_path / "site", f"cli-{tmp_path.name[-12:]}")


def _launch(site_dir: Path, *extra: str) -> str:
    """Run a serial-mode launcher until it idles; its stderr (progress and summary)."""
    ran = run("launcher", "--site", str(site_dir), "--mode", "serial", "--max-idle-sec", "2", *extra)
    assert ran.code == 0, ran
    return ran.err


def test_launcher_prints_progress_and_a_summary_then_wait_logs_and_status(
    tolu_client: Client, site_dir: Path
) -> None:
    (good,) = json.loads(
        ok("job", "create", "--site", str(site_dir), "--app", "hello", "--tag", "run=w", "--json")
    )
    bad = ok("job", "create", "--app", "fail", "--tag", "run=w", "--retry-limit", "0", "-q").strip()
    err = _launch(site_dir, "--progress")
    summary = err.strip().splitlines()[-1]
    assert re.fullmatch(
        r"launcher \(serial mode\) at site \S+: 2 jobs ran in [0-9.]+ s \([0-9.]+ jobs/s\): "
        r"1 done, 1 errors, 0 timeouts",
        summary,
    ), err
    summary_json = json.loads(
        run("launcher", "--site", str(site_dir), "--mode", "serial", "--max-idle-sec", "1", "--json").out
    )
    assert summary_json["ran"] == 0 and summary_json["exit_code"] == 0

    # job wait: 0 when all finished, 1 with one line naming the failure otherwise
    assert ok("job", "wait", str(good["id"])).strip() == "1 job finished"
    line = one_error("job", "wait", "--tag", "run=w")
    output = f"{site_dir}/data/fail/{bad}/job.out"
    assert (
        line
        == f"Error: 1 of 2 jobs did not finish: job {bad} FAILED: exit code 3; "
        f"RUN_ERROR: retry limit 0 reached (output: {output})"
    )
    assert [j["state"] for j in json.loads(run("job", "wait", good["id"].__str__(), "--json").out)] == [
        "JOB_FINISHED"
    ]

    # job logs: the output file; -n for the tail
    assert ok("job", "logs", str(good["id"])) == "hello world\n"
    assert ok("job", "logs", bad, "-n", "1") == "boom x\n"
    shown = json.loads(ok("job", "logs", bad, "--json"))
    assert shown == {"job": int(bad), "state": "FAILED", "path": output, "output": "boom x\n"}

    # status: one screen, the failure with its reason
    screen = ok("status")
    assert re.search(r"^jobs +2: JOB_FINISHED 1, FAILED 1$", screen, re.M), screen
    assert f"job {bad} FAILED: exit code 3" in screen and "failed    1 (newest first):" in screen
    data = json.loads(ok("status", "--json"))
    assert data["jobs"] == {"JOB_FINISHED": 1, "FAILED": 1} and data["user"] == tolu_client.username


def test_cancel_and_listing_newest_first(tolu_client: Client, site_dir: Path) -> None:
    ids = [int(i) for i in ok("job", "create", "--app", "hello", "-n", "3", "--tag", "run=c", "-q").split()]
    table = ok("job", "ls", "--tag", "run=c").splitlines()
    assert [int(row.split()[0]) for row in table[1:]] == sorted(ids, reverse=True)
    oldest = ok("job", "ls", "--tag", "run=c", "--sort", "oldest").splitlines()
    assert [int(row.split()[0]) for row in oldest[1:]] == sorted(ids)
    assert [
        j["id"] for j in json.loads(ok("job", "ls", "--tag", "run=c", "--json", "--limit", "2"))
    ] == sorted(ids, reverse=True)[:2]
    assert ok("job", "cancel", str(ids[0])).strip() == "Cancelled 1 job (0 had ended)"
    assert json.loads(ok("job", "cancel", "--tag", "run=c", "--json")) == {"cancelled": 2, "already_ended": 1}
    assert tolu_client.jobs.counts(tags={"run": "c"}) == {S.KILLED: 3}
    assert one_error("job", "cancel") == "Error: no jobs selected: give ids or --tag/--app/--site to cancel"
    assert one_error("job", "cancel", "999999999") == "Error: no such jobs: 999999999"


def test_watch_and_follow_show_changes_until_ctrl_c(tolu_client: Client, site_dir: Path) -> None:
    (job_id,) = [int(i) for i in ok("job", "create", "--app", "hello", "--tag", "run=f", "-q").split()]
    with (
        background("job", "ls", "--tag", "run=f", "--watch", "--interval", "0.2") as (watcher, watched),
        background("event", "ls", "--job", str(job_id), "-f", "--interval", "0.2") as (follower, followed),
    ):
        output_shows(watched, "PREPROCESSED")
        output_shows(followed, "STAGED_IN")
        tolu_client.jobs.update(job_id, state="KILLED", state_data={"reason": "watch me"})
        output_shows(watched, "KILLED")
        output_shows(followed, "reason=watch me")
        for proc in (watcher, follower):
            proc.send_signal(signal.SIGINT)
            assert proc.wait(timeout=60) == 0
    # job logs -f prints the output as it comes and ends with the job
    (second,) = ok("job", "create", "--app", "hello", "--param", "name=follow", "-q").split()
    with background("job", "logs", second, "-f", "--interval", "0.2") as (logs, out):
        _launch(site_dir)
        assert logs.wait(timeout=120) == 0
        assert out.read_text() == "hello follow\n"


def test_whoami_and_logout(tolu_client: Client, tmp_path: Path) -> None:
    config = Path(tolu_client_config := str(tmp_path / "tolu-credentials.yaml"))
    assert (
        ok("whoami").strip()
        == f"{tolu_client.username} at {tolu_client.url} (credentials: {tolu_client_config})"
    )
    assert json.loads(ok("whoami", "--json"))["username"] == tolu_client.username
    out = ok("logout").strip()
    assert (
        out == f"Logged out {tolu_client.username} at {tolu_client.url} (removed {config})"
        and not config.exists()
    )
    assert ok("logout").strip() == f"not logged in (no {config})"
    assert one_error("whoami") == f"Error: no credentials at {config}: log in first with `tolu login`"


def test_transfer_session_event_ls(tolu_client: Client, site_dir: Path) -> None:
    (job_id,) = ok(
        "job",
        "create",
        "--app",
        "hello",
        "--stage-in",
        "local:/data/in.txt=in.txt",
        "--stage-out",
        "out.txt=local:/results/out.txt",
        "-q",
    ).split()
    table = ok("transfer", "ls", "--job", job_id)
    assert "local:/data/in.txt" in table and "local:/results/out.txt" in table and "pending" in table
    assert {x["direction"] for x in json.loads(ok("transfer", "ls", "--json"))} == {"in", "out"}
    site_id = json.loads(ok("site", "ls", "--json"))[0]["id"]
    session = tolu_client.sessions.create(site_id)
    rows = json.loads(ok("session", "ls", "--json"))
    assert [(r["id"], r["jobs_held"]) for r in rows] == [(session.id, 0)]
    assert str(session.id) in ok("session", "ls")
    events = json.loads(ok("event", "ls", "--job", job_id, "--json"))
    assert [e["to_state"] for e in events] == ["READY", "CREATED"]  # newest first


def test_app_rm_and_site_rm(tolu_client: Client, site_dir: Path) -> None:
    ok("job", "create", "--app", "hello", "-n", "2")
    assert ok("app", "rm", "hello", "--yes").strip().endswith("and 2 job(s)")
    assert [a.name for a in tolu_client.apps.filter()] == ["fail"] and tolu_client.jobs.count() == 0
    assert one_error("app", "rm", "hello", "--yes").startswith("Error: no app named 'hello'")
    ran = run("site", "rm", str(site_dir))  # asks; no answer on stdin: nothing removed
    assert ran.code == 1 and tolu_client.sites.filter() != []
    assert json.loads(ok("site", "rm", str(site_dir), "--yes", "--json"))["apps"] == 1
    assert tolu_client.sites.filter() == [] and tolu_client.apps.filter() == []
