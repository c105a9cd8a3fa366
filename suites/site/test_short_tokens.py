"""Access tokens that live 2 seconds: the site agent and the launchers it starts run
through many expiries on their site token, the user's client through its login; no
401 reaches anyone and no job is lost."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
import yaml

from harness.evidence import Evidence
from runner.client import Client
from runner.server.process import ServerProcess
from runner.states import JobState

N_JOBS = 60
#: the time at the start of each log line (logging's %(asctime)s: "2026-11-28 07:47:06,401 ")
STAMP = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} ", re.M)
TOLU = [sys.executable, "-c", "from runner.cli.main import cli; cli()"]
APP = """\
name: nap
command_template: sh -c "sleep 0.3 && echo done"
"""


@pytest.fixture
def short_server(tmp_path: Path) -> Iterator[ServerProcess]:
    server = ServerProcess(tmp_path / "server", env={"TOLU_ACCESS_TOKEN_TTL": "2"})
    server.start(timeout=90)
    try:
        yield server
    finally:
        server.stop()


def tolu(*args: str) -> str:
    done = subprocess.run([*TOLU, *args], capture_output=True, text=True, timeout=180, env=os.environ.copy())
    assert done.returncode == 0, f"tolu {' '.join(args)}: exit {done.returncode}\n{done.stdout}{done.stderr}"
    return done.stdout


def test_agent_and_launchers_run_through_many_token_expiries(
    short_server: ServerProcess,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    tolu_evidence: Evidence,
    wait_for_jobs: Callable[..., Any],
) -> None:
    Client.register(short_server.url, "short-lived", "a-long-enough-password")
    user = Client.login(short_server.url, "short-lived", "a-long-enough-password")
    monkeypatch.setenv("TOLU_CONFIG", str(user.save_config(tmp_path / "credentials.yaml")))
    site_dir = tmp_path / "site"
    out = tolu("site", "init", str(site_dir), "--name", "short")
    assert "site token saved" in out
    creds = yaml.safe_load((site_dir / "credentials.yaml").read_text())
    assert creds["api_token"].startswith("tolu_at_") and "refresh_token" not in creds
    tolu_evidence.add_site(site_dir)

    path = site_dir / "settings.yml"
    raw: dict[str, Any] = yaml.safe_load(path.read_text())
    raw["services"] = ["processing", "scheduler", "queue_maintainer"]
    raw["scheduler"]["poll_interval_sec"] = 1.0
    raw["processing"]["poll_interval_sec"] = 0.5
    raw["queue_maintainer"].update(
        enabled=True, depth=1, job_mode="serial", wall_time_min=30, poll_interval_sec=1.0
    )
    # the batch job queued last outlives the test's server: it stops soon after, not at its wall time
    raw["launcher"].update(idle_timeout_sec=3, server_wait_sec=20)
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    (site_dir / "apps" / "nap.yml").write_text(APP)

    tolu("site", "start", str(site_dir))
    try:
        site_id = raw["site_id"]
        (app,) = [a for a in user.apps.filter(site_id=site_id) if a.name == "nap"]
        first_token = user.token
        jobs = user.jobs.bulk_create([{"app_id": app.id, "tags": {"i": str(i)}} for i in range(N_JOBS)])
        finished = wait_for_jobs(user, [j.id for j in jobs], [JobState.JOB_FINISHED], timeout=900)
        assert len(finished) == N_JOBS
        assert user.token != first_token, "the user's client renewed its login"
    finally:
        tolu("site", "stop", str(site_dir))

    # The run outlived many access tokens ...
    events = user.events.filter(site_id=site_id)
    span = max(e.timestamp for e in events) - min(e.timestamp for e in events)
    assert span.total_seconds() > 10, f"the run took {span}: fewer than 5 token lifetimes"
    # ... every launcher ran on the site token (it was exchanged, and it reaches this site only) ...
    (token,) = [t for t in user.account.tokens() if t.scope == "site"]
    assert token.site_id == site_id and token.last_used_at is not None
    # ... and no 401 reached the agent or a launcher: their logs hold no auth error at all.
    logs = {p.name: p.read_text(errors="replace") for p in (site_dir / "log").glob("*.log")}
    assert any(name.startswith("launcher") or "launcher" in text for name, text in logs.items()), logs.keys()
    for name, text in logs.items():
        said = STAMP.sub("", text)  # a line's time may end in ",401"
        for bad in (r"\b401\b", "AuthError", "token expired", "log in again", "Traceback"):
            assert not re.search(bad, said), f"{name}: {bad!r}\n{text[-3000:]}"
    assert jwt.decode(user.token or "", options={"verify_signature": False})["scope"] == "full"
