"""Several server workers on one port (``--workers N``, PostgreSQL): launcher sessions
that talk to both at once never get the same job and lose none; the workers go with
their supervisor; SQLite is refused in one line."""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from harness.databases import scratch_database
from harness.waiting import wait_until
from runner.client import Client
from runner.server.process import ServerProcess
from runner.states import JobState

S = JobState
SESSIONS = 8
JOBS = 2_400


@pytest.fixture
def two_workers(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ServerProcess]:
    request.getfixturevalue("postgres_url")  # the harness's PostgreSQL checks (skip / --require)
    with scratch_database("tolu_workers") as url:
        server = ServerProcess(tmp_path / "server", database_url=url, workers=2)
        server.start(timeout=90)
        try:
            yield server
        finally:
            server.stop()


def _workers(server: ServerProcess, n: int = 2) -> list[psutil.Process]:
    """The supervisor's ``n`` workers, once they are all up: the server answers as soon as
    its first worker does, and a worker takes its name when it has imported the server."""
    assert server.pid is not None
    supervisor = psutil.Process(server.pid)

    def named() -> list[psutil.Process]:
        return [p for p in supervisor.children() if p.name() == "tolu-server"]

    wait_until(lambda: len(named()) == n, timeout=60, what=f"{n} server workers named tolu-server")
    return named()


def _cpu(proc: psutil.Process) -> float:
    times = proc.cpu_times()
    return float(times.user + times.system)


def _launcher_session(url: str, token: str, site_id: int, seed: int, out: Any) -> None:
    """A launcher's conversation: acquire a batch, report it RUNNING, then RUN_DONE.

    A new client (a new connection) per round, so that the rounds of one session
    land on either worker. Puts ``(session id, jobs it held)``, or the error."""
    try:
        held: list[int] = []
        session = Client(url, token).sessions.create(site_id, ttl_sec=600)
        size = 20 + seed * 13
        while True:
            client = Client(url, token)
            got = client.sessions.acquire(session.id, max_num_jobs=size)
            if not got:
                client.close()
                break
            ids = [j.id for j in got]
            held.extend(ids)
            client.jobs.bulk_update([{"id": i, "state": "RUNNING"} for i in ids], returning=False)
            client.sessions.heartbeat(session.id)
            done = [{"id": i, "state": "RUN_DONE", "return_code": 0} for i in ids]
            client.jobs.bulk_update(done, returning=False)
            client.close()
        out.put((session.id, held))
    except Exception as exc:  # the test reports it; a silent child would leave it waiting
        out.put((None, f"session {seed}: {exc!r}"))


def test_eight_sessions_on_two_workers_never_share_a_job_and_lose_none(two_workers: ServerProcess) -> None:
    server = two_workers
    Client.register(server.url, "alice", "s3cret-pass")
    alice = Client.login(server.url, "alice", "s3cret-pass")
    site = alice.sites.create(name="w", path="/tmp/w", hostname="localhost")
    app = alice.apps.create(site_id=site.id, name="true", command_template="/bin/true")
    created = alice.jobs.bulk_create([{"app_id": app.id}] * JOBS)
    workers = _workers(server)
    assert len(workers) == 2
    before = [_cpu(w) for w in workers]

    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    assert alice.token is not None
    procs = [
        ctx.Process(target=_launcher_session, args=(server.url, alice.token, site.id, seed, out))
        for seed in range(SESSIONS)
    ]
    for p in procs:
        p.start()
    results = [out.get(timeout=600) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    assert [error for session, error in results if session is None] == []

    taken = Counter(job_id for _, ids in results for job_id in ids)
    assert [job_id for job_id, n in taken.items() if n > 1] == [], "jobs handed to two sessions"
    assert set(taken) == {j.id for j in created}, "jobs no session got"
    assert alice.jobs.counts() == {S.JOB_FINISHED: JOBS}
    started = Counter(e.job_id for e in alice.events.filter(to_state=S.RUNNING))
    assert started == Counter({j.id: 1 for j in created}), "a job ran twice"
    # both workers answered a good share of the requests
    used = [_cpu(w) - b for w, b in zip(workers, before, strict=True)]
    assert min(used) > 0.1 * sum(used), f"CPU seconds per worker: {used}"


def test_the_workers_go_with_their_supervisor(two_workers: ServerProcess) -> None:
    workers = _workers(two_workers)
    assert len(workers) == 2 and two_workers.pid is not None
    os.kill(two_workers.pid, signal.SIGKILL)
    wait_until(
        lambda: [w.pid for w in workers if w.is_running() and w.status() != psutil.STATUS_ZOMBIE] == [],
        timeout=60,
        what="both workers to exit after their supervisor was killed",
    )


def test_several_workers_on_sqlite_are_refused_in_one_line(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "runner.server", "--workers", "2", "--data-dir", str(tmp_path), "--port", "1"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "--workers 2 needs PostgreSQL" in lines[0]
    assert not (tmp_path / "tolu.db").exists()
