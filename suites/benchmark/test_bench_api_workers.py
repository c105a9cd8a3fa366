"""`tolu bench api` against a server of several workers, with several sessions at once
(small N): every job cycled once, the server's CPU and memory those of all its processes,
one scenario per number of workers; SQLite refused in one line. The bench's request
counter counts the requests of every worker.

Behaviour only: nothing here asserts how fast anything was.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
import requests

from harness.bench import runs
from harness.bench.counted_server import COUNTS_DIR
from harness.bench.processes import read_stat
from harness.bench.schema import load
from harness.bench.stack import RequestCounter, open_database, start_server
from harness.probes import libpq_url, postgres_admin_url
from harness.run import run_state
from harness.waiting import wait_until

JOBS = 400
SESSIONS = 4


def _bench_api(*args: str) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "runner.cli.main", "bench", "api", *args]
    return subprocess.run(argv, capture_output=True, text=True, timeout=600, check=False)


def _postgres_is_local() -> bool:
    """Whether the test cluster's backends are processes of this machine (not another host or
    a container's), as the bench needs to read their CPU."""
    import psycopg

    with psycopg.connect(libpq_url(postgres_admin_url()), connect_timeout=10) as conn:
        pid = int(conn.execute("SELECT pg_backend_pid()").fetchone()[0])  # type: ignore[index]
        stat = read_stat(pid)
        return stat is not None and stat.comm == "postgres"


def test_sessions_against_two_workers_cycle_every_job_once(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    run_state(request.config).need("postgres")
    out = tmp_path / "api"
    done = _bench_api(
        "--database", "postgresql", "--server-workers", "1,2", "--sessions", str(SESSIONS),
        "--jobs", str(JOBS), "--batch", "50", "--table-jobs", str(JOBS), "--pages", "2", "--out", str(out),
    )  # fmt: skip
    assert done.returncode == 0, f"exited {done.returncode}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    schema = json.loads((out / "bench.schema.json").read_text())
    jsonschema.Draft202012Validator(schema).validate(json.loads((out / "bench.json").read_text()))
    result = load(out / "bench.json")
    assert result.parameters["server_workers"] == [1, 2] and result.parameters["sessions"] == SESSIONS
    one, two = result.scenarios
    assert (one.name, two.name) == ("api-postgresql", "api-postgresql-2-workers")
    assert one.parameters["server_workers"] == 1 and two.parameters["server_workers"] == 2

    for scenario in (one, two):
        (trial,) = scenario.trials
        assert trial.figures["jobs_acquired_twice"] == 0 and trial.figures["jobs_not_cycled"] == 0
        outcomes = {v.figure: v.outcome for v in scenario.verdicts}
        assert outcomes["jobs_acquired_twice"] == "met" and outcomes["jobs_not_cycled"] == "met"
        per_session = trial.raw["jobs_per_session"]
        assert len(per_session) == SESSIONS and sum(per_session) == JOBS
        assert trial.notes[0].startswith(f"{JOBS} of {JOBS} jobs went through acquire-and-complete")

    # the server's CPU per job is that of the supervisor and both workers together
    (trial,) = two.trials
    server = [p for p in trial.processes if p.root == "server"]
    assert sorted(p.role for p in server) == ["server", "server", "supervisor"]
    assert trial.figures["server_processes"] == 3
    cpu_ms = trial.figures["cycle_server_cpu_ms_per_job"]
    assert cpu_ms is not None and cpu_ms > 0
    assert cpu_ms * JOBS / 1000 == pytest.approx(sum(p.cpu_s for p in server), rel=1e-6)
    share = trial.figures["busiest_worker_cpu_share"]
    assert share is not None and 0.5 <= share <= 1
    # memory: all processes together, and the largest one, which carries the aim
    total, largest = trial.figures["server_peak_rss_mb"], trial.figures["server_process_peak_rss_mb"]
    assert total is not None and largest is not None and total > largest > 0
    assert two.figure_info["server_process_peak_rss_mb"].aim == "< 200"
    assert two.figure_info["server_peak_rss_mb"].aim is None
    assert two.figure_info["cycle_server_cpu_ms_per_job"].aim is None, "no one process handles every job"
    # PostgreSQL's own CPU for the cycle, where its processes are this machine's
    for scenario in (one, two):
        database_ms = scenario.trials[0].figures["cycle_database_cpu_ms_per_job"]
        if _postgres_is_local():
            assert database_ms is not None and database_ms > 0
        else:
            assert database_ms is None
    ratio = trial.figures["ratio_cycle_vs_one_worker"]
    assert ratio is not None and ratio > 0
    assert "ratio_cycle_vs_one_worker" not in one.figure_info
    assert one.figure_info["cycle_server_cpu_ms_per_job"].aim == "<= 0.06"


def test_sessions_on_sqlite_take_turns_and_cycle_every_job_once(tmp_path: Path) -> None:
    """One server process on SQLite, three sessions at once (harness.bench.runs, no CLI)."""
    settings = runs.RunSettings(argv=["test"], out_dir=tmp_path / "api")
    outcome = runs.api(settings, jobs=300, batch=20, table_jobs=300, pages=1, sessions=3)
    (scenario,) = outcome.result.scenarios
    (trial,) = scenario.trials
    assert scenario.name == "api-sqlite" and scenario.parameters["sessions"] == 3
    assert trial.figures["jobs_acquired_twice"] == 0 and trial.figures["jobs_not_cycled"] == 0
    assert sum(trial.raw["jobs_per_session"]) == 300 and len(trial.raw["jobs_per_session"]) == 3
    assert "cycle_database_cpu_ms_per_job" not in scenario.figure_info, "SQLite works inside the server"
    assert "busiest_worker_cpu_share" not in scenario.figure_info
    client_cores = trial.figures["cycle_client_cpu_cores"]
    assert client_cores is not None and client_cores > 0


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (
            ["--server-workers", "2"],
            "Error: --server-workers 2 needs --database postgresql: SQLite takes one writer at a time, "
            "so more server processes would only wait for each other",
        ),
        (
            ["--database", "both", "--server-workers", "1,4"],
            "Error: --server-workers 4 needs --database postgresql: SQLite takes one writer at a time, "
            "so more server processes would only wait for each other",
        ),
        (
            ["--database", "postgresql", "--server-workers", "2", "--server", "http://127.0.0.1:9"],
            "Error: --server-workers 2 needs --server process (the server is started here)",
        ),
    ],
)
def test_several_workers_are_refused_in_one_line_before_anything_starts(
    tmp_path: Path, args: list[str], error: str
) -> None:
    out = tmp_path / "out"
    done = _bench_api(*args, "--out", str(out))
    assert done.returncode == 1
    assert done.stderr.splitlines() == [error]
    assert not out.exists()


def test_a_bad_worker_list_is_a_usage_error(tmp_path: Path) -> None:
    done = _bench_api("--server-workers", "1,x", "--out", str(tmp_path / "out"))
    assert done.returncode == 2
    assert "Invalid value for '--server-workers': '1,x': expected a number of 1 or more" in done.stderr


def test_the_request_counter_adds_up_every_worker(request: pytest.FixtureRequest, tmp_path: Path) -> None:
    """Each worker counts the requests it answers; whichever answers the counter sums them all."""
    run_state(request.config).need("postgres")
    database = open_database("postgresql")
    server = start_server("process", tmp_path / "server", database, workers=2)
    try:
        counter = RequestCounter(server)
        before = counter.count()
        assert before is not None and counter.source == "request counter"
        counts = tmp_path / "server" / COUNTS_DIR

        def per_worker() -> dict[str, int]:
            return {f.name: sum(json.loads(f.read_text()).values()) for f in counts.glob("*.json")}

        at_start = per_worker()
        sent = 0

        def both_workers_counted() -> bool:
            nonlocal sent
            # a new connection each time, so that either worker may take it
            requests.get(server.url + "/health", timeout=10).raise_for_status()
            sent += 1
            now = per_worker()
            return len(now) == 2 and all(n > at_start.get(name, 0) for name, n in now.items())

        wait_until(both_workers_counted, timeout=60, what="requests answered by both workers")
        assert counter.count() == before + sent
        assert counter.by_route["GET /health"] >= sent
    finally:
        server.stop()
        database.drop()
