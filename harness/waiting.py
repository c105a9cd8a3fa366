"""Waiting on conditions, never on the clock: ``wait_until`` polls a condition until
it holds and, on timeout, says what it waited for and the last value it saw;
``wait_for_jobs`` is built on it and says where each job is stuck."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from runner.states import FINAL, JobState

if TYPE_CHECKING:
    from runner.models import Job

T = TypeVar("T")

DEFAULT_TIMEOUT_SEC = 60.0
OUTPUT_TAIL_LINES = 5
#: how much of the last value a timeout message shows.
SHOW_CHARS = 1000


class WaitTimeout(AssertionError):
    """``wait_until`` gave up: what it waited for, for how long, and the last value seen.

    An AssertionError, so a test that waits in vain fails rather than errors.
    """

    def __init__(self, what: str, timeout: float, last: object) -> None:
        shown = repr(last)
        if len(shown) > SHOW_CHARS:
            shown = shown[:SHOW_CHARS] + f"... ({len(shown)} characters)"
        super().__init__(f"timeout after {timeout:g}s waiting for {what}; last seen: {shown}")
        self.what = what
        self.timeout = timeout
        self.last: Any = last


def wait_until(
    condition: Callable[[], T],
    *,
    timeout: float,
    what: str = "",
    interval: float | Callable[[T], float] = 0.1,
    check: Callable[[T], object] | None = None,
) -> T:
    """Call ``condition`` until what it returns holds; return that value.

    The value holds when it is truthy or, given ``check``, when ``check(value)`` is
    (``wait_until(lambda: client.jobs.get(7), check=lambda job: job.state is S.RUNNING,
    ...)`` returns the job and, on timeout, shows it). Between calls it sleeps
    ``interval`` seconds (0 suits a condition that blocks by itself), or as many as
    ``interval(value)`` says for the value just seen. After ``timeout``
    seconds it raises :class:`WaitTimeout` naming ``what`` (default: the condition's
    name) and the last value. An exception from ``condition`` ends the wait at once:
    raise one to fail early (a process that died, a job that failed).
    """
    __tracebackhide__ = True
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if check(value) if check is not None else value:
            return value
        left = deadline - time.monotonic()
        if left <= 0:
            raise WaitTimeout(what or getattr(condition, "__qualname__", repr(condition)), timeout, value)
        time.sleep(min(interval(value) if callable(interval) else interval, left))


def _ids(jobs: Iterable[Any]) -> list[int]:
    return [int(getattr(j, "id", j)) for j in jobs]


def describe(job: Job, site_dirs: Sequence[Path] = ()) -> str:
    """One line about a job; with its site directories, also where its output is and its tail."""
    tags = ",".join(f"{k}={v}" for k, v in sorted(job.tags.items()))
    extra = f" rc={job.return_code}" if job.return_code is not None else ""
    line = (
        f"job {job.id} ({job.state}) app={job.app_id} workdir={job.workdir}{extra}"
        f" retries={job.retry_count}/{job.retry_limit}" + (f" tags={tags}" if tags else "")
    )
    for site in site_dirs:
        output = Path(site) / "data" / job.workdir / "job.out"
        if output.is_file():
            tail = output.read_text(errors="replace").splitlines()[-OUTPUT_TAIL_LINES:]
            line += f"\n    output {output}:" + "".join(f"\n      | {text}" for text in tail)
            break
    return line


def wait_for_jobs(
    client: Any,
    jobs: Iterable[Any],
    states: Iterable[JobState | str] = (JobState.JOB_FINISHED,),
    timeout: float = DEFAULT_TIMEOUT_SEC,
    *,
    poll_sec: float = 0.5,
    fail_states: Iterable[JobState | str] | None = None,
    site_dirs: Sequence[Path] = (),
) -> list[Job]:
    """Wait until every job (ids or Job objects) is in one of ``states``; return them.

    Fails the test at once when a job reaches a final state that is not wanted
    (``fail_states``, default: the final states not in ``states``), and after
    ``timeout`` seconds with the list of jobs that are not there yet and their states.
    Given the site directories, failed jobs are listed with their output file and its tail.
    """
    # Here, not at the top: wait_until also serves the bench and the server container,
    # whose extras do not install pytest.
    import pytest

    ids = _ids(jobs)
    wanted = {JobState(s) for s in states}
    bad = {JobState(s) for s in fail_states} if fail_states is not None else set(FINAL) - wanted

    def current() -> list[Job]:
        jobs_now: list[Job] = client.jobs.filter(id=ids, limit=len(ids)) if ids else []
        failed = [j for j in jobs_now if j.state in bad]
        if failed:
            listing = "\n".join(f"  {describe(j, site_dirs)}" for j in failed)
            ended = ", ".join(sorted({str(j.state) for j in failed}))
            pytest.fail(
                f"{len(failed)} of {len(ids)} jobs ended in {ended} "
                f"while waiting for {', '.join(sorted(map(str, wanted)))}:\n{listing}",
                pytrace=False,
            )
        return jobs_now

    def arrived(jobs_now: list[Job]) -> bool:
        return len(jobs_now) == len(ids) and all(j.state in wanted for j in jobs_now)

    try:
        done = wait_until(current, check=arrived, timeout=timeout, interval=poll_sec, what="jobs")
    except WaitTimeout as exc:
        pytest.fail(_stuck(exc.last, ids, wanted, timeout, site_dirs), pytrace=False)
    return sorted(done, key=lambda j: ids.index(j.id))


def _stuck(
    jobs: list[Job], ids: list[int], wanted: set[JobState], timeout: float, site_dirs: Sequence[Path]
) -> str:
    """The timeout message of ``wait_for_jobs``: every job not there yet, and where it is."""
    found = {j.id for j in jobs}
    stuck = [j for j in jobs if j.state not in wanted]
    lines = [f"  {describe(j, site_dirs)}" for j in stuck] + [
        f"  job {i}: not found" for i in ids if i not in found
    ]
    counts: dict[str, int] = {}
    for job in stuck:
        counts[str(job.state)] = counts.get(str(job.state), 0) + 1
    summary = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
    return (
        f"timeout after {timeout:g}s: {len(lines)} of {len(ids)} jobs not in "
        f"{', '.join(sorted(map(str, wanted)))} ({summary}):\n" + "\n".join(lines[:200])
    )
