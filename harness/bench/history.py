"""A run's history read back from the server: per job, when it was created, started and ended.

The pages of jobs and Events are read one at a time and only numbers are kept, so a
million-job run costs memory in proportion to its jobs, not to their JSON.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

#: rows per request while paging
PAGE = 5_000
FINAL = ("JOB_FINISHED", "FAILED", "KILLED")
#: the states whose Events the throughput figures need
TIMED = ("RUNNING", "RUN_DONE", "RUN_ERROR", "RUN_TIMEOUT", *FINAL)


def epoch(value: datetime) -> float:
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.timestamp()


@dataclass
class History:
    """Seconds from ``t0`` of each job's creation and of its Events, per state."""

    created: dict[int, float] = field(default_factory=dict)
    state: dict[int, str] = field(default_factory=dict)
    #: state -> job -> seconds: the first Event into that state (RUNNING: the last, a retried
    #: job's final run)
    at: dict[str, dict[int, float]] = field(default_factory=dict)
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


def read(client: Any, *, site_id: int, tags: dict[str, str], since: float, t0: float) -> History:
    """The jobs tagged ``tags`` and their Events since ``since`` (epoch seconds), relative to ``t0``."""
    history = History()
    for job in pages(client.jobs.page, site_id=site_id, tags=tags, ordering="id"):
        jid = int(job.id)
        history.created[jid] = epoch(job.created_at) - t0
        history.state[jid] = str(job.state)
    after = datetime.fromtimestamp(since, UTC)
    for state in TIMED:
        seen: dict[int, float] = {}
        for ev in pages(client.events.page, site_id=site_id, to_state=state, after=after, ordering="id"):
            jid = int(ev.job_id)
            if jid not in history.created:
                continue
            if state in ("RUN_ERROR", "RUN_TIMEOUT"):
                history.errors.append(f"job {jid} {state}: {json.dumps(ev.data)[:300]}")
            if state == "RUNNING" or jid not in seen:
                seen[jid] = epoch(ev.timestamp) - t0
        history.at[state] = seen
    return history


@dataclass(frozen=True)
class Step:
    """One Event of a job: from, to, when (epoch seconds), and its data."""

    id: int
    from_state: str | None
    to_state: str
    at: float
    data: dict[str, Any]


def steps(client: Any, *, site_id: int, since: float) -> dict[int, list[Step]]:
    """Every Event of the site's jobs since ``since``, per job, in the order they were written."""
    out: dict[int, list[Step]] = {}
    after = datetime.fromtimestamp(since, UTC)
    for ev in pages(client.events.page, site_id=site_id, after=after, ordering="id"):
        out.setdefault(int(ev.job_id), []).append(
            Step(
                int(ev.id),
                str(ev.from_state) if ev.from_state is not None else None,
                str(ev.to_state),
                epoch(ev.timestamp),
                dict(ev.data or {}),
            )
        )
    return out
