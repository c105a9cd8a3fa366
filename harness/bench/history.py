"""A run's history read back from the server: per job, when it was created, started and ended.

The jobs are known from their creation (bulk create answers with their ids and times);
their Events are asked for by batches of job ids (``GET /events?job_id=..``, the
indexed column), so reading a million jobs' history costs requests in proportion to
the jobs, none of which scans the whole table, and only numbers are kept, not JSON.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

#: rows per request while paging
PAGE = 5_000
#: job ids per Events request (the ids travel in the query string)
IDS_PER_REQUEST = 400
FINAL = ("JOB_FINISHED", "FAILED", "KILLED")
#: the states whose Events the throughput figures need
TIMED = ("RUNNING", "RUN_DONE", "RUN_ERROR", "RUN_TIMEOUT", *FINAL)


def epoch(value: datetime) -> float:
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.timestamp()


@dataclass(frozen=True)
class Step:
    """One Event of a job: from, to, when (epoch seconds), and its data."""

    id: int
    from_state: str | None
    to_state: str
    at: float
    data: dict[str, Any]


@dataclass
class History:
    """Seconds from ``t0`` of each job's creation and of its Events, per state."""

    created: dict[int, float] = field(default_factory=dict)
    #: the state each job ended the run in (its last Event's)
    state: dict[int, str] = field(default_factory=dict)
    #: state -> job -> seconds: the first Event into that state (RUNNING: the last, a retried
    #: job's final run)
    at: dict[str, dict[int, float]] = field(default_factory=lambda: {s: {} for s in TIMED})
    #: RUN_ERROR/RUN_TIMEOUT Events, with their data (return code, output tail)
    errors: list[str] = field(default_factory=list)

    def final_states(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for state in self.state.values():
            counts[state] = counts.get(state, 0) + 1
        return counts


def pages(fetch: Any, **params: Any) -> Iterator[Any]:
    """Every row of a paged list: ``fetch(limit=, offset=, **params)`` returns a Page."""
    offset = 0
    while True:
        page = fetch(limit=PAGE, offset=offset, **params)
        yield from page.results
        offset += len(page.results)
        if not page.results or offset >= page.count:
            return


def created(jobs: Iterable[Any]) -> dict[int, float]:
    """Job id -> creation time (epoch seconds), from the answer of a bulk create."""
    return {int(job.id): epoch(job.created_at) for job in jobs}


def events(client: Any, job_ids: Sequence[int]) -> Iterator[tuple[int, Step]]:
    """Every Event of these jobs, as (job id, step), each job's in the order they were written."""
    for start in range(0, len(job_ids), IDS_PER_REQUEST):
        chunk = list(job_ids[start : start + IDS_PER_REQUEST])
        for ev in pages(client.events.page, job_id=chunk, ordering="id"):
            step = Step(
                int(ev.id),
                str(ev.from_state) if ev.from_state is not None else None,
                str(ev.to_state),
                epoch(ev.timestamp),
                dict(ev.data or {}),
            )
            yield int(ev.job_id), step


def steps(client: Any, job_ids: Sequence[int]) -> dict[int, list[Step]]:
    """Every Event of these jobs, per job, in the order they were written."""
    out: dict[int, list[Step]] = {}
    for job, step in events(client, job_ids):
        out.setdefault(job, []).append(step)
    return out


def read(client: Any, jobs: Mapping[int, float], *, t0: float) -> History:
    """The history of ``jobs`` (id -> creation time) relative to ``t0``: only the numbers."""
    return summarize(jobs, events(client, sorted(jobs)), t0=t0)


def summarize(jobs: Mapping[int, float], steps: Iterable[tuple[int, Step]], *, t0: float) -> History:
    """:class:`History` of ``jobs`` from their Events (each job's in the order written)."""
    history = History(created={job: at - t0 for job, at in jobs.items()})
    for job, step in steps:
        history.state[job] = step.to_state
        if step.to_state not in history.at:
            continue
        if step.to_state in ("RUN_ERROR", "RUN_TIMEOUT"):
            history.errors.append(f"job {job} {step.to_state}: {json.dumps(step.data)[:300]}")
        seen = history.at[step.to_state]
        if step.to_state == "RUNNING" or job not in seen:
            seen[job] = step.at - t0
    for job in history.created:
        history.state.setdefault(job, "MISSING")
    return history
