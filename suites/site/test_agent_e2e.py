"""The whole site agent, for real: `tolu site init` + `tolu site start` with a queue
maintainer of depth 1 on the local scheduler runs 200 jobs with stage-in and
stage-out through the local transfer backend, and survives a server restart in the
middle (it retries, loses nothing, and logs one clear warning)."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from harness.evidence import Evidence
from harness.waiting import wait_until
from runner.client import Client
from runner.server.process import ServerProcess
from runner.site import directory
from runner.states import JobState

N_JOBS = 200
TOLU = [sys.executable, "-c", "from runner.cli.main import cli; cli()"]

# Each job takes a moment, so the server restart falls in the middle of the run.
COPY_APP = """\
name: copy
command_template: sh -c "sleep 0.2 && cp in.bin out.bin"
"""


@pytest.fixture
def own_server(tmp_path: Path) -> Iterator[ServerProcess]:
    """A server this test may restart (same port, same database, same signing keys)."""
    server = ServerProcess(tmp_path / "server")
    server.start(timeout=90)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def user(own_server: ServerProcess, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Client:
    password = secrets.token_urlsafe(16)
    Client.register(own_server.url, "agent-e2e", password)
    client = Client.login(own_server.url, "agent-e2e", password)
    monkeypatch.setenv("TOLU_CONFIG", str(client.save_config(tmp_path / "credentials.yaml")))
    return client


def tolu(*args: str, timeout: float = 120) -> str:
    done = subprocess.run(
        [*TOLU, *args], capture_output=True, text=True, timeout=timeout, env=os.environ.copy()
    )
    assert done.returncode == 0, f"tolu {' '.join(args)}: exit {done.returncode}\n{done.stdout}{done.stderr}"
    return done.stdout


def configure(site_dir: Path, queue: str = "") -> None:
    path = site_dir / "settings.yml"
    raw: dict[str, Any] = yaml.safe_load(path.read_text())
    raw["services"] = ["processing", "transfer", "scheduler", "queue_maintainer"]
    raw["scheduler"]["poll_interval_sec"] = 1.0
    raw["processing"]["poll_interval_sec"] = 0.5
    raw["transfer"].update(poll_interval_sec=0.5, retry_backoff_sec=0.5, max_items_per_task=50)
    raw["queue_maintainer"].update(
        enabled=True, depth=1, job_mode="serial", wall_time_min=30, poll_interval_sec=1.0, queue=queue
    )
    # the batch job queued last outlives the test's server: it stops soon after, not at its wall
    # time holding the (Slurm) node; a launcher idle during the restart may stop too, and the queue
    # maintainer sends another
    raw["launcher"].update(idle_timeout_sec=5, server_wait_sec=20)
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    (site_dir / "apps" / "copy.yml").write_text(COPY_APP)


@pytest.mark.parametrize("scheduler", ["local", "slurm"])
def test_agent_runs_200_staged_jobs_through_a_server_restart(
    scheduler: str,
    request: pytest.FixtureRequest,
    tmp_path: Path,
    own_server: ServerProcess,
    user: Client,
    tolu_evidence: Evidence,
    wait_for_jobs: Callable[..., Any],
) -> None:
    queue = ""
    if scheduler == "slurm":
        queue = request.getfixturevalue("slurm").default_partition  # skipped where there is none
    site_dir = tmp_path / "site"
    out = tolu("site", "init", str(site_dir), "--name", "e2e", "--scheduler", scheduler)
    assert "registered site 'e2e'" in out
    tolu_evidence.add_site(site_dir)
    configure(site_dir, queue)
    out = tolu("site", "start", str(site_dir))
    assert "agent started" in out
    agent_pid = directory.running_pid(site_dir)
    assert agent_pid is not None
    try:
        site_id = yaml.safe_load((site_dir / "settings.yml").read_text())["site_id"]
        (app,) = [a for a in user.apps.filter(site_id=site_id) if a.name == "copy"]
        remote, results = tmp_path / "remote", tmp_path / "results"
        remote.mkdir()
        payloads = [os.urandom(512 + 37 * i) for i in range(N_JOBS)]
        specs = []
        for i, data in enumerate(payloads):
            (remote / f"in{i}.bin").write_bytes(data)
            specs.append(
                {
                    "app_id": app.id,
                    "tags": {"i": str(i)},
                    "transfers": [
                        {"direction": "in", "source": f"local:{remote}/in{i}.bin", "destination": "in.bin"},
                        {
                            "direction": "out",
                            "source": "out.bin",
                            "destination": f"local:{results}/out{i}.bin",
                        },
                    ],
                }
            )
        jobs = user.jobs.bulk_create(specs)
        ids = [j.id for j in jobs]

        # Restart the server in the middle: once some jobs finished, before all did.
        wait_until(
            lambda: user.jobs.count(site_id=site_id, state="JOB_FINISHED"),
            timeout=300,
            interval=0.5,
            what="a finished job",
        )
        finished_before = user.jobs.count(site_id=site_id, state="JOB_FINISHED")
        own_server.stop()
        assert finished_before < N_JOBS, "every job finished before the restart: nothing tested"
        log_file = directory.log_path(site_dir)

        def log_says(text: str, timeout: float) -> None:
            wait_until(
                log_file.read_text,
                check=lambda log: text in log,
                timeout=timeout,
                interval=0.5,
                what=f"{text!r} in {log_file}",
            )

        log_says("unreachable", 60)  # the agent noticed the outage
        log_says("no answer to 10 tries", 120)  # ... and went a few backoff rounds without the server
        own_server.start(timeout=90)
        log_says("reachable again", 120)

        finished = wait_for_jobs(user, ids, [JobState.JOB_FINISHED], timeout=900)
        assert len(finished) == N_JOBS
        for job in finished:
            i = int(job.tags["i"])
            assert (results / f"out{i}.bin").read_bytes() == payloads[i], f"job {job.id} output"
        assert directory.running_pid(site_dir) == agent_pid, "the agent did not survive"
    finally:
        tolu("site", "stop", str(site_dir))
    log = directory.log_path(site_dir).read_text()
    assert log.count("unreachable") == 1, log
    assert "reachable again" in log
    assert "Traceback" not in log, log
    assert directory.running_pid(site_dir) is None
