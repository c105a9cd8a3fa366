"""Launcher building blocks without a server: child processes, report batching, tasks."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from harness.waiting import wait_until
from runner.launcher import journal as journals
from runner.launcher.procs import Exit, ProcessGroup
from runner.launcher.tasks import (
    Task,
    TaskError,
    TaskFactory,
    prepare_workdir,
    record_success,
    recovered_exit,
)
from runner.models import JobReport
from runner.states import JobState


def drain(
    pg: ProcessGroup, want_exits: int, timeout: float = 30, wait_sec: float = 1.0
) -> tuple[list[tuple[int, float]], list[Exit], list[tuple[int, str]]]:
    """``pg.wait(wait_sec)`` until ``want_exits`` children exited or failed to start."""
    started: list[tuple[int, float]] = []
    exits: list[Exit] = []
    errors: list[tuple[int, str]] = []

    def ended() -> int:
        ev = pg.wait(wait_sec)
        started.extend(ev.started)
        exits.extend(ev.exits)
        errors.extend(ev.start_errors)
        return len(exits) + len(errors)

    wait_until(ended, check=lambda n: n >= want_exits, timeout=timeout, interval=0, what=f"{want_exits} ends")
    return started, exits, errors


def _runs(pid: int) -> bool:
    """The process runs (a zombie waiting for its parent to reap it runs nothing)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@pytest.mark.parametrize("threads", [0, 2])
def test_exits_are_noticed_at_once_and_failed_starts_reported(tmp_path: Path, threads: int) -> None:
    pg = ProcessGroup(spawn_threads=threads)
    try:
        pg.submit(1, ["sh", "-c", "echo out; echo err >&2; exit 7"], cwd=tmp_path, env={},
                  out_path=tmp_path / "1.out")
        pg.submit(2, ["/no/such/program"], cwd=tmp_path, env={}, out_path=tmp_path / "2.out")
        pg.submit(3, [sys.executable, "-c", "import time; time.sleep(0.3)"], cwd=tmp_path, env={},
                  out_path=tmp_path / "3.out")
        pg.submit(4, ["sleep", "60"], cwd=tmp_path, env={}, out_path=tmp_path / "4.out")
        # Event driven: wait(60) returns as each exit happens, so the 0.3 s child is
        # reported while the 60 s one still runs; a wait that sat out its timeout
        # would report both together.
        started, exits, errors = drain(pg, 3, wait_sec=60)
        by_key = {e.key: e for e in exits}
        assert sorted(by_key) == [1, 3] and len(pg) == 1
        assert by_key[1].returncode == 7 and by_key[1].output_tail() == "out\nerr\n"
        assert by_key[3].returncode == 0
        assert errors == [(2, "cannot start '/no/such/program': No such file or directory")]
        assert {k for k, _ in started} == {1, 3, 4}
        pg.terminate_all()
        _, stopped, _ = drain(pg, 1)
        assert stopped[0].key == 4 and stopped[0].stopped
        assert len(pg) == 0
    finally:
        pg.close()


def test_wall_time_kills_the_whole_process_group(tmp_path: Path) -> None:
    pg = ProcessGroup(spawn_threads=1)
    try:
        # the shell's child (sleep) must die too, not only the shell
        pg.submit(1, ["sh", "-c", "sleep 60 & echo $! > sleep.pid; wait"], cwd=tmp_path, env={},
                  out_path=tmp_path / "o", wall_time_sec=1.0)
        _, exits, _ = drain(pg, 1)
        assert exits[0].timed_out and not exits[0].stopped and exits[0].returncode != 0
        assert (tmp_path / "sleep.pid").exists(), "the shell had not started its sleep in 1 s"
        sleep_pid = int((tmp_path / "sleep.pid").read_text())
        wait_until(lambda: not _runs(sleep_pid), timeout=30, what=f"the shell's sleep {sleep_pid} to end")
    finally:
        pg.close()


def test_terminate_all_stops_running_and_cancels_queued(tmp_path: Path) -> None:
    pg = ProcessGroup(spawn_threads=1)
    try:
        pg.submit(1, ["sleep", "60"], cwd=tmp_path, env={}, out_path=tmp_path / "o")
        wait_until(lambda: pg.wait(1.0).started, timeout=30, interval=0, what="the start")
        pg.terminate_all()
        exits = wait_until(lambda: pg.wait(10).exits, timeout=60, interval=0, what="the exit")
        assert exits[0].stopped and not exits[0].timed_out
    finally:
        pg.close()


def _report(job_id: int, state: JobState) -> JobReport:
    return JobReport(id=job_id, attempt=0, state=state, timestamp=datetime.now(UTC))


def test_journal_keeps_what_was_not_acknowledged_and_skips_a_torn_line(tmp_path: Path) -> None:
    j = journals.Journal(tmp_path, site_id=3).open()
    j.note_session(7)
    first = j.append(7, [_report(1, JobState.RUNNING), _report(2, JobState.RUNNING)])
    j.append(7, [_report(1, JobState.RUN_DONE)])
    j.ack(e.seq for e in first)
    j.sync()
    with j.path.open("a") as fh:  # a kill in the middle of a write
        fh.write('{"n": 99, "s": 7, "r": {"id"')
    header, entries, sessions = journals.read(j.path)
    assert header["site_id"] == 3 and sessions == [7]
    assert [(e.session_id, e.report.id, e.report.state) for e in entries] == [(7, 1, JobState.RUN_DONE)]
    assert j.pending == 1
    j.close()
    assert j.path.exists()  # a report is still unacknowledged: kept for the next launcher


def test_a_journal_is_an_orphan_only_once_its_launcher_is_gone(tmp_path: Path) -> None:
    mine = journals.Journal(tmp_path, site_id=1).open()
    mine.append(4, [_report(9, JobState.RUN_DONE)])
    # another launcher (here: the same process, another open file) sees it locked
    assert list(journals.orphans(tmp_path)) == []
    mine.close()  # its lock goes with it (as with a process that dies)
    dead = journals.Journal(tmp_path, site_id=1)
    dead.path = tmp_path / journals.DIR / "otherhost-123-1.jsonl"
    dead.path.write_text(mine.path.read_text().replace(f'"host":"{mine.host}"', '"host":"otherhost"'))
    mine.path.unlink()
    (orphan,) = journals.orphans(tmp_path)
    assert [e.report.id for e in orphan.entries] == [9] and not orphan.same_host
    orphan.release(remove=True)
    assert not dead.path.exists()


def test_an_acknowledged_journal_is_removed_on_close(tmp_path: Path) -> None:
    j = journals.Journal(tmp_path, site_id=1).open()
    j.ack(e.seq for e in j.append(1, [_report(1, JobState.RUNNING)]))
    j.close()
    assert not j.path.exists()


def test_workdir_may_not_leave_the_data_directory(tmp_path: Path) -> None:
    from types import SimpleNamespace

    factory = TaskFactory(tmp_path, {})
    assert factory.workdir(SimpleNamespace(workdir="app/1")) == (tmp_path / "app/1").resolve()  # type: ignore[arg-type]
    for bad in ("../x", "/etc", "a/../../x"):
        with pytest.raises(TaskError, match="leaves"):
            factory.workdir(SimpleNamespace(workdir=bad))  # type: ignore[arg-type]


def test_noted_success_is_recovered_only_for_the_lost_attempt(tmp_path: Path) -> None:
    from types import SimpleNamespace

    task = Task(job_id=5, argv=["true"], workdir=str(tmp_path / "w"), attempt=1, session_id=10)
    prepare_workdir(task)
    record_success(task, 1.0, 2.0)

    def job(state: JobState, attempt: int, job_id: int = 5) -> object:
        return SimpleNamespace(id=job_id, state=state, attempt=attempt)

    w = Path(task.workdir)
    # nothing reached the server: same attempt, offered again
    assert recovered_exit(w, job(JobState.PREPROCESSED, 1), 11) is not None  # type: ignore[arg-type]
    # RUNNING reached it, the outcome did not: proposed (the server decides: reports.py)
    assert recovered_exit(w, job(JobState.RESTART_READY, 2), 11) is not None  # type: ignore[arg-type]
    # the same session, another job, an older attempt: run it
    assert recovered_exit(w, job(JobState.RESTART_READY, 2), 10) is None  # type: ignore[arg-type]
    assert recovered_exit(w, job(JobState.RESTART_READY, 2, job_id=6), 11) is None  # type: ignore[arg-type]
    assert recovered_exit(w, job(JobState.RESTART_READY, 3), 11) is None  # type: ignore[arg-type]
