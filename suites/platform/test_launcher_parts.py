"""Launcher building blocks without a server: report batching, tasks, the exit note."""

from __future__ import annotations

from pathlib import Path

import pytest

from runner.launcher import workdir as wd
from runner.launcher.session import _rounds
from runner.launcher.tasks import Task, TaskError, TaskFactory, recovered_exit
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
    from types import SimpleNamespace

    task = Task(job_id=5, argv=["true"], workdir=str(tmp_path / "w"), attempt=1, session_id=10)
    wd.prepare(task.workdir)
    wd.note_success(task.workdir, task.job_id, task.session_id, task.attempt, 1.0, 2.0)

    def job(state: JobState, retry_count: int, job_id: int = 5) -> object:
        return SimpleNamespace(id=job_id, state=state, retry_count=retry_count)

    w = Path(task.workdir)
    # nothing reached the server: same attempt, offered again
    assert recovered_exit(w, job(JobState.PREPROCESSED, 1), 11) is not None  # type: ignore[arg-type]
    # RUNNING reached it, the outcome did not: the expiry timed it out (retry_count + 1)
    assert recovered_exit(w, job(JobState.RESTART_READY, 2), 11) is not None  # type: ignore[arg-type]
    # the same session, another job, an older attempt: run it
    assert recovered_exit(w, job(JobState.RESTART_READY, 2), 10) is None  # type: ignore[arg-type]
    assert recovered_exit(w, job(JobState.RESTART_READY, 2, job_id=6), 11) is None  # type: ignore[arg-type]
    assert recovered_exit(w, job(JobState.RESTART_READY, 3), 11) is None  # type: ignore[arg-type]


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
