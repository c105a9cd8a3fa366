"""Waiting for jobs: poll with a timeout, and on timeout say where each job is stuck."""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from runner.states import FINAL, JobState

if TYPE_CHECKING:
    from runner.models import Job

DEFAULT_TIMEOUT_SEC = 60.0
OUTPUT_TAIL_LINES = 5


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
    ids = _ids(jobs)
    wanted = {JobState(s) for s in states}
    bad = {JobState(s) for s in fail_states} if fail_states is not None else set(FINAL) - wanted
    deadline = time.monotonic() + timeout
    current: list[Job] = []
    while True:
        current = client.jobs.filter(id=ids, limit=len(ids)) if ids else []
        failed = [j for j in current if j.state in bad]
        if failed:
            listing = "\n".join(f"  {describe(j, site_dirs)}" for j in failed)
            ended = ", ".join(sorted({str(j.state) for j in failed}))
            pytest.fail(
                f"{len(failed)} of {len(ids)} jobs ended in {ended} "
                f"while waiting for {', '.join(sorted(map(str, wanted)))}:\n{listing}",
                pytrace=False,
            )
        if len(current) == len(ids) and all(j.state in wanted for j in current):
            return sorted(current, key=lambda j: ids.index(j.id))
        if time.monotonic() >= deadline:
            break
        time.sleep(poll_sec)
    found = {j.id for j in current}
    stuck = [j for j in current if j.state not in wanted]
    lines = [f"  {describe(j, site_dirs)}" for j in stuck] + [
        f"  job {i}: not found" for i in ids if i not in found
    ]
    counts: dict[str, int] = {}
    for job in stuck:
        counts[str(job.state)] = counts.get(str(job.state), 0) + 1
    summary = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
    pytest.fail(
        f"timeout after {timeout:g}s: {len(lines)} of {len(ids)} jobs not in "
        f"{', '.join(sorted(map(str, wanted)))} ({summary}):\n" + "\n".join(lines[:200]),
        pytrace=False,
    )
