"""Crash safety: kill -9 the launcher halfway through 500 jobs; a second one finishes them.

Every job holds a lock on its workdir while it runs and appends start/end to a
marker file, so the files show on their own, independently of the server, that no
job ever ran twice at the same time and that every one ran to completion.

What a dead launcher had not yet seen cannot be known: a job whose process wrote
"end" in the instant before the SIGKILL, but whose exit the launcher had not reaped,
runs again. Jobs whose exit it had seen but not yet reported are not run again (the
next launcher finds the success noted in the workdir). So a second complete run is
allowed only for the jobs that were in flight at the kill, at most one per slot.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import psutil

from harness.waiting import wait_until
from runner.client import Client
from runner.states import JobState

S = JobState
N_JOBS = 500
SLOTS = 4  # 2 fake nodes x 2 jobs per node


def test_kill_9_halfway_then_a_second_launcher_finishes_every_job_once(
    tolu_site: Any, tolu_client: Client, make_jobs: Any, tolu_launcher: Any, fake_nodes: Any,
    wait_for_jobs: Any, tolu_evidence: Any,
) -> None:
    fake_nodes(2, cpus=2)  # SLOTS jobs at a time; the session expires 3 s after the kill
    jobs = make_jobs("marker", N_JOBS, parameters={"seconds": 0.05},
                     resources={"node_packing_count": 2}, tags={"run": "crash"})
    ids = [j.id for j in jobs]

    first = tolu_launcher("mpi")

    def counts() -> dict[S, int]:
        assert first.poll() is None, first.console_tail()
        return tolu_client.jobs.counts(id=ids)

    wait_until(counts, check=lambda c: c.get(S.JOB_FINISHED, 0) >= N_JOBS // 2, timeout=240,
               interval=0.2, what="half of the jobs finished")
    spawners = psutil.Process(first.pid).children()
    first.kill()  # SIGKILL: no clean-up, no session end; returns once the launcher is gone
    # Its spawners get SIGTERM as it dies and stop their tasks; a task that ends with 0
    # meanwhile is noted in the journal (its successor sends that RUN_DONE). The kill
    # is over when they are gone.
    wait_until(lambda: not any(_running(p.pid) for p in spawners), timeout=60, interval=0.05,
               what="the killed launcher's spawners to end")
    killed = datetime.now(UTC)

    second = tolu_launcher("mpi", max_idle_sec=10)
    finished = wait_for_jobs(tolu_client, jobs, states=[S.JOB_FINISHED], timeout=300)
    assert len(finished) == N_JOBS
    second.stop()

    # From the marker files: never two copies at once, every job ran to completion,
    # a second complete run only for what was in flight when the launcher died.
    twice = []
    for job in finished:
        marker = (tolu_site.path / "data" / job.workdir / "marker").read_text().split()
        assert "CONCURRENT" not in marker, (job.id, marker)
        assert marker[-2:] == ["start", "end"], (job.id, marker)
        if marker.count("end") > 1:
            twice.append((job.id, marker))
    assert len(twice) <= SLOTS, twice

    # From the Event history: one RUN_DONE per job; every RUNNING is closed by an
    # outcome before the next RUNNING of the same job.
    events = tolu_client.events.filter(site_id=tolu_site.id)
    by_job: dict[int, list[Any]] = defaultdict(list)
    for e in sorted(events, key=lambda e: (e.timestamp, e.id)):
        by_job[e.job_id].append(e)
    # What ran when the launcher died: an Event carries the time the launcher saw the
    # change, so a status batch it sent just before it died that landed after the kill
    # counts at its own time (no waiting for it to land). The next launcher reports what
    # it recovers from a workdir with the original times too, but after the restart.
    running_at_kill = set()
    for job_id in ids:
        seq = sorted(by_job[job_id], key=lambda e: e.id)
        restart = next((i for i, e in enumerate(seq) if e.to_state is S.RUN_TIMEOUT), len(seq))
        before_kill = [e.to_state for e in seq[:restart] if e.timestamp < killed]
        if before_kill and before_kill[-1] is S.RUNNING:
            running_at_kill.add(job_id)
    restarted = 0
    restarted_ids: set[int] = set()
    for job_id in ids:
        seq = [e.to_state for e in sorted(by_job[job_id], key=lambda e: e.id)]
        assert seq.count(S.RUN_DONE) == 1, (job_id, seq)
        open_run = False
        for state in seq:
            if state is S.RUNNING:
                assert not open_run, (job_id, seq)
                open_run = True
            elif state in (S.RUN_DONE, S.RUN_ERROR, S.RUN_TIMEOUT):
                open_run = False
        if S.RUN_TIMEOUT in seq:
            restarted += 1
            restarted_ids.add(job_id)
            timeout = next(e for e in by_job[job_id] if e.to_state is S.RUN_TIMEOUT)
            # the dead launcher's run: closed by the second launcher, which took over its
            # journal (a run it saw begin and not end), or by its session's end or expiry
            assert timeout.data["reason"].startswith(
                ("its launcher died", "session ended", "session expired")
            ), timeout.data
            assert seq[seq.index(S.RUN_TIMEOUT) + 1] is S.RESTART_READY
    # the jobs that were running when the launcher died were run again
    assert restarted >= 1 and running_at_kill <= restarted_ids, (restarted_ids, running_at_kill)


@contextlib.contextmanager
def _detached_task(
    tolu_site: Any, make_jobs: Any, tolu_launcher: Any, fake_nodes: Any
) -> Iterator[tuple[Any, Any, int]]:
    """A job whose task leaves a ``setsid`` child behind, running on a one-slot MPI
    launcher: ``(job, launcher, the child's pid)``. Every child the job's runs left is
    killed at the end, whatever the test found."""
    fake_nodes(1, cpus=1)
    [job] = make_jobs("detached", 1, parameters={"seconds": 300})
    pid_file = tolu_site.path / "data" / job.workdir / "child.pid"
    launcher = tolu_launcher("mpi")
    left = wait_until(lambda: pid_file.exists() and pid_file.read_text().strip(), timeout=120,
                      interval=0.1, what="the task's detached child")
    pids = {int(left)}
    try:
        yield job, launcher, int(left)
    finally:
        with contextlib.suppress(OSError, ValueError):
            pids.add(int(pid_file.read_text()))  # a rerun's own child
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def test_what_a_killed_launcher_left_running_is_gone_before_its_job_runs_again(
    tolu_site: Any, tolu_client: Client, make_jobs: Any, tolu_launcher: Any, fake_nodes: Any,
) -> None:
    # A launcher killed with all its processes at once (its spawners get no chance to
    # stop their tasks) cannot stop what its tasks started; its successor on the same
    # host kills what carries its mark before the job is released to run again.
    with _detached_task(tolu_site, make_jobs, tolu_launcher, fake_nodes) as (job, first, left):
        _kill_all_but(first, left)
        assert _running(left)  # it outlived its launcher: nothing else would stop it

        second = tolu_launcher("mpi", max_idle_sec=60)
        rerun = wait_until(lambda: tolu_client.jobs.get(job.id), check=lambda j: j.attempt >= 1
                           and j.state is S.RUNNING, timeout=120, interval=0.2, what="the job running again")
        assert rerun.attempt == 1
        assert not _running(left)
        assert "left running" in second.log_path.read_text()


def _kill_all_but(launcher: Any, spared: int) -> None:
    """SIGKILL ``launcher`` and every process under it but ``spared``, like an OOM kill of
    all of them: each is stopped first, so none can act on its parent's death (a spawner
    that outlived its launcher for a moment would stop its task and what it left)."""
    procs = [p for p in psutil.Process(launcher.proc.pid).children(recursive=True) if p.pid != spared]
    procs.append(psutil.Process(launcher.proc.pid))
    for proc in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.send_signal(signal.SIGSTOP)
    for proc in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.send_signal(signal.SIGKILL)
    launcher.kill()  # reaps it


def _running(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_a_run_the_dead_launcher_saw_begin_is_closed_even_after_its_session_expired(
    tolu_site: Any, tolu_client: Client, make_jobs: Any, tolu_launcher: Any, fake_nodes: Any,
) -> None:
    # The launcher dies before its RUNNING report goes out, and its session expires
    # before a successor starts (the server hands the held job back, no Event). The
    # successor sends that RUNNING under its own session: it must not be left holding
    # a job it does not run (the job would stay RUNNING until the successor ends).
    fake_nodes(1, cpus=1, report_interval_sec=3600)  # reports wait: only the journal has it
    [job] = make_jobs("sleeper", 1, parameters={"seconds": 300})
    output = tolu_site.path / "data" / job.workdir / "job.out"
    first = tolu_launcher("mpi")
    wait_until(lambda: output.exists() and "sleeping" in output.read_text(), timeout=120, interval=0.1,
               what="the job's task to start")
    first.kill()
    wait_until(lambda: tolu_client.jobs.get(job.id), check=lambda j: j.session_id is None, timeout=60,
               interval=0.2, what="the dead launcher's session to expire")
    assert tolu_client.jobs.get(job.id).state is S.PREPROCESSED  # its RUNNING never arrived

    fake_nodes(1, cpus=1)
    tolu_launcher("mpi", max_idle_sec=60)
    rerun = wait_until(lambda: tolu_client.jobs.get(job.id), check=lambda j: j.attempt >= 1
                       and j.state is S.RUNNING, timeout=120, interval=0.2,
                       what="the job running again under the second launcher")
    assert rerun.attempt == 1
    events = sorted(tolu_client.events.filter(job_id=job.id), key=lambda e: e.id)
    ran = [(e.to_state, e.data.get("reason", "")) for e in events if e.from_state is not None]
    assert [state for state, _ in ran][-4:] == [S.RUNNING, S.RUN_TIMEOUT, S.RESTART_READY, S.RUNNING], ran
    assert ran[-3][1].startswith("its launcher died"), ran


def test_a_stopped_tasks_process_outside_its_group_is_stopped_with_it(
    tolu_site: Any, tolu_client: Client, make_jobs: Any, tolu_launcher: Any, fake_nodes: Any,
) -> None:
    # a launcher stops a task through its process group; what left the group (setsid)
    # carries the launcher's mark and the job's id, and goes too
    with _detached_task(tolu_site, make_jobs, tolu_launcher, fake_nodes) as (job, launcher, child):
        launcher.stop()
        assert not _running(child)
        assert tolu_client.jobs.get(job.id).state is S.RESTART_READY
