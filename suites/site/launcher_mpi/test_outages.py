"""Outages: the launcher rides them out, keeps every report, and nothing counts twice.

Each test runs its own server (a process it can stop and start again on the same
port, data directory and database), on SQLite and on PostgreSQL, in the server's
test mode (TOLU_TEST_FAULTS=1: runner/server/faults.py) so it can also answer 503
or 401 for a while. The jobs are ``marker`` tasks: each holds a lock on its workdir
while it runs and appends start/end to a marker file, so the files alone show how
often each job ran and that no two copies ever ran at once.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from harness.fixtures_server import ServerHandle
from harness.waiting import wait_until
from runner.client import Client
from runner.server.process import ServerProcess
from runner.states import JobState

S = JobState
HEARTBEAT_SEC = 1.0
TTL_SEC = 3 * HEARTBEAT_SEC


class RestartableServer:
    """One server that can be stopped and started again where it was."""

    def __init__(self, data_dir: Path, database_url: str | None) -> None:
        self.data_dir = data_dir
        self.database_url = database_url
        self.env = {"TOLU_TEST_FAULTS": "1"}
        self.port = 0
        self.proc: ServerProcess | None = None
        self.log_path = data_dir / "server.log"

    def start(self) -> None:
        self.proc = ServerProcess(
            self.data_dir, port=self.port, database_url=self.database_url, env=self.env,
            log_path=self.log_path,
        )
        self.proc.start(timeout=90)
        self.port = self.proc.port

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.stop()
            self.proc = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def fault(self, status: int, seconds: float, *paths: str, after: bool = False) -> None:
        """Answer ``status`` to requests on ``paths`` for ``seconds``; ``after``: carry each
        out first, so only its answer is lost."""
        spec = {"status": status, "seconds": seconds, "paths": list(paths), "after": after}
        requests.put(f"{self.url}/_test/faults", json=spec, timeout=10).raise_for_status()

    def hits(self, status: int) -> int:
        """Requests answered with ``status`` by the fault switch so far."""
        resp = requests.get(f"{self.url}/_test/faults", timeout=10)
        resp.raise_for_status()
        return int(resp.json()["hits"].get(str(status), 0))

    def clear_faults(self) -> None:
        requests.delete(f"{self.url}/_test/faults", timeout=10).raise_for_status()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.requires("postgres"))])
def own_server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RestartableServer]:
    if request.param == "postgresql":
        from harness.databases import scratch_database

        with scratch_database("tolu_outage") as url:
            server = RestartableServer(tmp_path / "server", url)
            server.start()
            try:
                yield server
            finally:
                server.stop()
        return
    server = RestartableServer(tmp_path / "server", None)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def tolu_server(own_server: RestartableServer) -> ServerHandle:
    """The harness's site, client and launcher fixtures, on this test's own server."""
    database = "sqlite" if own_server.database_url is None else "postgresql"
    return ServerHandle(
        url=own_server.url, database=database, mode="process", log_path=own_server.log_path,
        pid=own_server.proc.pid if own_server.proc else None, data_dir=own_server.data_dir,
    )


def marker(site: Any, job: Any) -> list[str]:
    path = site.path / "data" / job.workdir / "marker"
    return path.read_text().split() if path.exists() else []


def events_of(client: Client, job_id: int) -> list[Any]:
    return sorted(client.events.filter(job_id=job_id), key=lambda e: e.id)


def ran_once_each(site: Any, client: Client, jobs: list[Any]) -> None:
    """Every job ran exactly once (its marker file) and its history says so: one
    RUNNING stretch, one RUN_DONE."""
    for job in jobs:
        runs = marker(site, job)
        assert runs == ["start", "end"], (job.id, runs)
        seq = [e.to_state for e in events_of(client, job.id)]
        assert seq.count(S.RUN_DONE) == 1, (job.id, seq)


def test_launcher_rides_out_a_server_outage_of_three_ttl(
    own_server: RestartableServer, tolu_site: Any, tolu_client: Client, make_jobs: Any,
    tolu_launcher: Any, fake_nodes: Any, wait_for_jobs: Any,
) -> None:
    fake_nodes(2, cpus=2, heartbeat_sec=HEARTBEAT_SEC)  # 4 slots; the session ttl is 3 s
    jobs = make_jobs("marker", 16, parameters={"seconds": 1.5}, resources={"node_packing_count": 2})
    ids = [j.id for j in jobs]
    launcher = tolu_launcher("mpi", max_idle_sec=3)
    wait_until(
        lambda: tolu_client.jobs.count(id=ids, state=[S.JOB_FINISHED]) >= 4
        and tolu_client.jobs.count(id=ids, state=[S.RUNNING]) >= 2,
        timeout=120, what="some jobs finished and others running",
    )
    own_server.stop()
    down_since = time.monotonic()
    on_disk = lambda: sum(marker(tolu_site, j)[-1:] == ["end"] for j in jobs)  # noqa: E731
    ended_before = on_disk()
    # the outage lasts three session ttls, and tasks go on ending meanwhile
    wait_until(
        lambda: launcher.poll() is None and time.monotonic() - down_since >= 3 * TTL_SEC
        and on_disk() > ended_before,
        timeout=120, what="a 3 x ttl outage during which tasks ended",
    )
    assert launcher.poll() is None, launcher.console_tail()
    own_server.start()

    finished = wait_for_jobs(tolu_client, jobs, states=[S.JOB_FINISHED], timeout=240)
    assert len(finished) == len(jobs)
    assert launcher.wait(timeout=120) == 0, launcher.console_tail()
    ran_once_each(tolu_site, tolu_client, finished)
    # the journal took every report and is gone with the launcher that wrote it
    assert list((tolu_site.path / "journal").glob("*.jsonl")) == []
    text = "".join(p.read_text() for p in (tolu_site.path / "log").glob("launcher-*.log"))
    assert "status reports kept" in text, text[-3000:]


def test_a_lost_session_is_replaced_and_its_running_jobs_reclaimed(
    own_server: RestartableServer, tolu_site: Any, tolu_client: Client, make_jobs: Any,
    tolu_launcher: Any, fake_nodes: Any, wait_for_jobs: Any,
) -> None:
    """The server ends the session while its jobs run (as an expiry would): they go
    RUN_TIMEOUT -> RESTART_READY; the launcher opens a new session, says they still
    run, and the server gives them back to it: each job runs once, with one RUN_DONE."""
    fake_nodes(2, cpus=2, heartbeat_sec=HEARTBEAT_SEC)
    jobs = make_jobs("marker", 4, parameters={"seconds": 6}, resources={"node_packing_count": 2})
    ids = [j.id for j in jobs]
    launcher = tolu_launcher("mpi", max_idle_sec=3)
    running = wait_until(
        lambda: tolu_client.jobs.filter(id=ids, state=[S.RUNNING]),
        check=lambda js: len(js) == 4, timeout=120, what="4 jobs RUNNING",
    )
    first = running[0].session_id
    assert first is not None
    tolu_client.sessions.delete(first)
    finished = wait_for_jobs(tolu_client, jobs, states=[S.JOB_FINISHED], timeout=240)
    assert launcher.wait(timeout=120) == 0, launcher.console_tail()
    ran_once_each(tolu_site, tolu_client, finished)
    for job in finished:
        seq = [(e.to_state, e.data) for e in events_of(tolu_client, job.id)]
        states = [s for s, _ in seq]
        assert states[-7:-4] == [S.RUN_TIMEOUT, S.RESTART_READY, S.RUNNING], (job.id, states)
        assert seq[-5][1].get("reclaimed_attempt") == 0, seq
    assert all(j.attempt == 0 and j.retry_count == 0 for j in finished), finished


def test_reports_are_kept_through_503_and_401(
    own_server: RestartableServer, tolu_site: Any, tolu_client: Client, make_jobs: Any,
    tolu_launcher: Any, fake_nodes: Any, wait_for_jobs: Any,
) -> None:
    """The server answers every report with 503, then with 401, for longer than the
    client retries: no report is dropped, every job ends JOB_FINISHED once."""
    fake_nodes(2, cpus=2, heartbeat_sec=HEARTBEAT_SEC)
    jobs = make_jobs("marker", 12, parameters={"seconds": 0.3}, resources={"node_packing_count": 2})
    own_server.fault(503, 600, "/reports")
    launcher = tolu_launcher("mpi", max_idle_sec=3)
    on_disk = lambda: sum(marker(tolu_site, j)[-1:] == ["end"] for j in jobs)  # noqa: E731
    wait_until(
        lambda: on_disk() >= 4 and own_server.hits(503) >= 2, timeout=120,
        what="tasks ending while their reports are answered 503",
    )
    own_server.fault(401, 600, "/reports")
    wait_until(
        lambda: on_disk() >= 8 and own_server.hits(401) >= 2, timeout=120,
        what="tasks ending while their reports are answered 401",
    )
    assert tolu_client.jobs.count(id=[j.id for j in jobs], state=[S.JOB_FINISHED]) == 0
    own_server.clear_faults()
    assert launcher.poll() is None, launcher.console_tail()
    finished = wait_for_jobs(tolu_client, jobs, states=[S.JOB_FINISHED], timeout=240)
    assert launcher.wait(timeout=120) == 0, launcher.console_tail()
    ran_once_each(tolu_site, tolu_client, finished)


def test_acquires_whose_answers_are_lost_after_their_commit_lose_no_job(
    own_server: RestartableServer, tolu_site: Any, tolu_client: Client, make_jobs: Any,
    tolu_launcher: Any, fake_nodes: Any, wait_for_jobs: Any,
) -> None:
    """Every acquire is carried out and its answer then lost (502), through the client's
    retries and the launcher's own: the jobs each one held come with the retry, so when
    answers come through again every job runs, once. Before acquires were named
    (AcquireSpec.request_id), each retry held more jobs, and those held in lost answers
    stayed with a live session that never heard of them (`tolu bench chaos`: 8 of 300)."""
    fake_nodes(2, cpus=2, heartbeat_sec=HEARTBEAT_SEC)
    jobs = make_jobs("marker", 40, parameters={"seconds": 0.1}, resources={"node_packing_count": 2})
    ids = [j.id for j in jobs]
    held = lambda: sorted(j.id for j in tolu_client.jobs.filter(id=ids) if j.session_id is not None)  # noqa: E731
    own_server.fault(502, 600, "/acquire", after=True)
    launcher = tolu_launcher("mpi", max_idle_sec=3)
    wait_until(lambda: own_server.hits(502) >= 2, timeout=120, what="an acquire answered 502 and its retry")
    first = held()
    wait_until(
        lambda: own_server.hits(502) >= 12, timeout=120,
        what="acquires answered 502 through the client's retries and the launcher's",
    )
    # one acquire's jobs, however often it was sent again
    assert 0 < len(first) < len(jobs) and held() == first, (first, held())
    own_server.clear_faults()
    finished = wait_for_jobs(tolu_client, jobs, states=[S.JOB_FINISHED], timeout=240)
    assert launcher.wait(timeout=120) == 0, launcher.console_tail()
    ran_once_each(tolu_site, tolu_client, finished)
    assert "whose answer it lost" in own_server.log_path.read_text()


def test_a_launcher_started_while_the_server_is_down_waits_for_it(
    own_server: RestartableServer, tolu_site: Any, tolu_client: Client, make_jobs: Any,
    tolu_launcher: Any, fake_nodes: Any, wait_for_jobs: Any,
) -> None:
    """A batch job that starts while the server restarts keeps its allocation: the
    launcher says in one line that it waits (launcher.server_wait_sec, 300 s by
    default), and runs the jobs once the server is back. `tolu bench chaos` restarted
    a launcher into a server outage and it ended with "cannot start" after 6 tries."""
    fake_nodes(1, cpus=2, heartbeat_sec=HEARTBEAT_SEC)
    jobs = make_jobs("marker", 4, parameters={"seconds": 0.1})
    own_server.stop()
    launcher = tolu_launcher("mpi", max_idle_sec=3)
    wait_until(
        lambda: "launcher waits for the server" in launcher.console_tail(), timeout=120,
        what="the launcher saying it waits for the server",
    )
    assert launcher.poll() is None, launcher.console_tail()
    own_server.start()
    finished = wait_for_jobs(tolu_client, jobs, states=[S.JOB_FINISHED], timeout=240)
    assert launcher.wait(timeout=120) == 0, launcher.console_tail()
    ran_once_each(tolu_site, tolu_client, finished)
    assert launcher.console_tail().count("launcher waits for the server") == 1, launcher.console_tail()


@pytest.mark.parametrize("mode", ["mpi", "serial"])
def test_a_launcher_with_nothing_to_run_stops_waiting_for_a_server_that_stays_away(
    own_server: RestartableServer, tolu_site: Any, tolu_launcher: Any, fake_nodes: Any, mode: str,
) -> None:
    """Holding no job, a launcher waits launcher.server_wait_sec for a server that went
    away, then stops (exit 0, the reason in its log) instead of holding its allocation
    until its wall time; with jobs in hand it rides out any outage (the tests above)."""
    fake_nodes(1, cpus=2, heartbeat_sec=HEARTBEAT_SEC)
    tolu_site.write_settings(launcher={"server_wait_sec": 5})
    launcher = tolu_launcher(mode, max_idle_sec=600)
    # the launcher's log (serial mode: its rank 0's, under that process's pid)
    log = lambda: "".join(p.read_text() for p in (tolu_site.path / "log").glob("launcher-*.log"))  # noqa: E731
    wait_until(lambda: "opened (heartbeat" in log(), timeout=120, what="the launcher's session")
    own_server.stop()
    assert launcher.wait(timeout=120) == 0, launcher.console_tail()
    assert "nothing to run here and the server away for" in log(), log()
    # the shutdown's requests are tried once: the session ends there by its TTL
    assert "could not end session" in log() and "DELETE /sessions" not in log(), log()
    assert "no summary (the server does not answer)" in launcher.console_tail(), launcher.console_tail()


def test_credentials_refused_for_good_stop_the_launcher_with_one_line(
    own_server: RestartableServer, tolu_site: Any, tolu_client: Client, tolu_launcher: Any,
    fake_nodes: Any, expected_errors: Any,
) -> None:
    """Issue 16 defect 1/3: a launcher that stops for another reason than done, idle or
    out of time exits non-zero, saying why in one line."""
    fake_nodes(1, cpus=1, heartbeat_sec=HEARTBEAT_SEC)
    launcher = tolu_launcher("mpi", max_idle_sec=600)
    wait_until(lambda: tolu_client.sessions.filter(site_id=tolu_site.id), timeout=60, what="a session")
    expected_errors("the server refuses the launcher's credentials")
    own_server.fault(401, 600, "/heartbeat")
    code = wait_until(launcher.poll, check=lambda c: c is not None, timeout=120, what="the launcher to stop")
    assert code == 1, launcher.console_tail()
    errors = [line for line in launcher.console_tail().splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, launcher.console_tail()
    why = "Error: launcher stopped: the server refuses the launcher's credentials: "
    assert errors[0].startswith(why), errors


def test_a_launcher_killed_during_an_outage_loses_no_outcome(
    own_server: RestartableServer, tolu_site: Any, tolu_client: Client, make_jobs: Any,
    tolu_launcher: Any, fake_nodes: Any, wait_for_jobs: Any,
) -> None:
    """The outcomes a launcher saw while the server was away are in its journal; it is
    killed (SIGKILL) before the server is back, and the next launcher of the site sends
    them: no job that ended is run again, every job ends once."""
    fake_nodes(2, cpus=2, heartbeat_sec=HEARTBEAT_SEC)
    jobs = make_jobs("marker", 12, parameters={"seconds": 1.0}, resources={"node_packing_count": 2})
    ids = [j.id for j in jobs]
    first = tolu_launcher("mpi", max_idle_sec=3)
    wait_until(
        lambda: tolu_client.jobs.count(id=ids, state=[S.RUNNING]) >= 2, timeout=120, what="jobs RUNNING"
    )
    own_server.stop()
    (journal,) = (tolu_site.path / "journal").glob("*.jsonl")

    def journaled_done() -> set[int]:
        """Jobs whose success the launcher has written to its journal."""
        from runner.launcher.journal import read

        # the launcher's own reading (a torn last line is skipped); nothing is acknowledged
        # while the server is away
        _header, entries, _sessions = read(journal)
        return {e.report.id for e in entries if e.report.state is S.RUN_DONE}

    before = journaled_done()
    wait_until(journaled_done, check=lambda d: len(d - before) >= 2, timeout=120, what="successes journaled")
    first.kill()
    # a task that ended in the instant before the kill, but whose exit the launcher
    # had not reaped, cannot be known: it runs again; what it had seen end does not
    seen = journaled_done()
    own_server.start()
    second = tolu_launcher("mpi", max_idle_sec=3)
    finished = wait_for_jobs(tolu_client, jobs, states=[S.JOB_FINISHED], timeout=240)
    assert second.wait(timeout=120) == 0, second.console_tail()
    for job in finished:
        runs = marker(tolu_site, job)
        assert "CONCURRENT" not in runs, (job.id, runs)
        if job.id in seen:  # ended before the kill: reported from the journal, never run again
            assert runs == ["start", "end"], (job.id, runs)
        history = events_of(tolu_client, job.id)
        assert [e.to_state for e in history].count(S.RUN_DONE) == 1
        # every real start left a RUNNING Event, even those killed with the launcher (one
        # more where the kill came between the journaled start and the task's first line)
        starts = [e for e in history if e.to_state is S.RUNNING and "reclaimed_attempt" not in e.data]
        story = "; ".join(f"{e.id} {e.to_state.value} {e.data}" for e in history)
        assert runs.count("start") <= len(starts) <= runs.count("start") + 1, f"job {job.id} {runs}: {story}"
    assert list((tolu_site.path / "journal").glob("*.jsonl")) == []
