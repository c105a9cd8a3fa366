"""Launcher building blocks without a server: report batching, tasks, the exit note."""

from __future__ import annotations

from pathlib import Path

import pytest

from runner.launcher import workdir as wd
from runner.launcher.session import _rounds
from runner.launcher.tasks import TaskError, TaskFactory
from runner.models import JobUpdate
from runner.states import JobState


def test_report_rounds_name_each_job_once_and_keep_order() -> None:
    u = [
        JobUpdate(id=1, state=JobState.RUNNING),
        JobUpdate(id=2, state=JobState.RUNNING),
        JobUpdate(id=1, state=JobState.RUN_DONE),
        JobUpdate(id=3, state=JobState.RUNNING),
        JobUpdate(id=2, state=JobState.RUN_ERROR),
    ]
    rounds = _rounds(u)
    assert [[(x.id, x.state) for x in r] for r in rounds] == [
        [(1, JobState.RUNNING), (2, JobState.RUNNING), (3, JobState.RUNNING)],
        [(1, JobState.RUN_DONE), (2, JobState.RUN_ERROR)],
    ]


def test_workdir_may_not_leave_the_data_directory(tmp_path: Path) -> None:
    from types import SimpleNamespace

    factory = TaskFactory(tmp_path, {})
    assert factory.workdir(SimpleNamespace(workdir="app/1")) == (tmp_path / "app/1").resolve()  # type: ignore[arg-type]
    for bad in ("../x", "/etc", "a/../../x"):
        with pytest.raises(TaskError, match="leaves"):
            factory.workdir(SimpleNamespace(workdir=bad))  # type: ignore[arg-type]


def test_noted_success_is_recovered_only_for_the_lost_attempt(tmp_path: Path) -> None:
    w = str(tmp_path / "w")
    wd.prepare(w)
    wd.note_success(w, 5, 10, 1, 1.0, 2.0)  # job 5, session 10, attempt (retry_count) 1
    record = wd.read_note(w)
    assert record is not None and (record["started"], record["ended"]) == (1.0, 2.0)
    # nothing reached the server: same attempt, offered again
    assert wd.lost_success(record, 5, 11, 1, restart_ready=False)
    # RUNNING reached it, the outcome did not: the expiry timed it out (retry_count + 1)
    assert wd.lost_success(record, 5, 11, 2, restart_ready=True)
    # the same session, another job, an older attempt: run it
    assert not wd.lost_success(record, 5, 10, 2, restart_ready=True)
    assert not wd.lost_success(record, 6, 11, 2, restart_ready=True)
    assert not wd.lost_success(record, 5, 11, 3, restart_ready=True)
    assert not wd.lost_success(record, 5, 11, 2, restart_ready=False)


def test_an_idle_launcher_asks_again_soon_then_once_a_second() -> None:
    """After the server runs dry the fetcher asks again after 50 ms, doubling each empty
    answer up to IDLE_ACQUIRE_SEC: a job created just then waits for the queue, not for
    a one-second poll."""
    from runner.launcher.fetcher import FIRST_IDLE_SEC, IDLE_ACQUIRE_SEC, Fetcher

    fetcher = Fetcher(None)  # type: ignore[arg-type]  # no request is made here
    waits = []
    for empty in range(1, 9):
        fetcher._empty = empty
        waits.append(fetcher.idle_wait())
    assert waits[0] == FIRST_IDLE_SEC and waits[1] == 2 * FIRST_IDLE_SEC
    assert waits == sorted(waits) and waits[-1] == IDLE_ACQUIRE_SEC
