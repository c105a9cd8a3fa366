"""``client.analytics``: what ran, how fast, on how many nodes, as tidy tables.

Each helper answers a :class:`~runner.client.results.Table` (one row per time point or
per allocation; ``to_pandas()`` for a DataFrame, an HTML table in a notebook), computed
from the Event history and the jobs' resources:

- ``throughput``: jobs that reached JOB_FINISHED per interval, and the running total;
- ``utilization``: nodes busy with RUNNING jobs over time, against an allocation's nodes;
- ``available_nodes``: for each running allocation, its nodes, the busy ones, the idle ones.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from runner.client._base import _chunks
from runner.client.results import Table
from runner.models import Event, Job, Tags
from runner.states import BatchJobState, JobState

if TYPE_CHECKING:
    from runner.client.client import Client

S = JobState
_ENDS_RUN = (S.RUN_DONE, S.RUN_ERROR, S.RUN_TIMEOUT)


def _node_share(job: Job) -> float:
    return job.num_nodes / job.node_packing_count


class Analytics:
    """``client.analytics``: throughput, utilization and available nodes as tidy tables."""

    def __init__(self, client: Client) -> None:
        self._client = client

    # ------------------------------------------------------------ selection

    def _events(
        self,
        jobs: Sequence[Job] | None,
        states: Iterable[JobState],
        site_id: int | None,
        since: datetime | None,
    ) -> list[Event]:
        events = self._client.events
        wanted = list(states)
        if jobs is None:
            return events.filter(site_id=site_id, to_state=wanted, after=since, ordering="timestamp")
        out: list[Event] = []
        for part in _chunks([j.id for j in jobs], 400):
            out += events.filter(job_id=list(part), to_state=wanted, after=since, ordering="timestamp")
        return sorted(out, key=lambda e: (e.timestamp, e.id))

    # ------------------------------------------------------------ tables

    def throughput(
        self,
        *,
        site_id: int | None = None,
        tags: Tags | None = None,
        since: datetime | None = None,
        interval_sec: float = 60.0,
    ) -> Table:
        """Jobs finished per interval: ``time`` (start of the interval, UTC), ``finished``,
        ``per_sec`` and ``total`` (finished so far), from the first to the last finish."""
        jobs = self._client.jobs.filter(tags=tags, site_id=site_id) if tags else None
        finishes = [e.timestamp for e in self._events(jobs, [S.JOB_FINISHED], site_id, since)]
        rows = []
        if finishes:
            step = timedelta(seconds=interval_sec)
            start = finishes[0]
            buckets = int((finishes[-1] - start) / step) + 1
            counts = [0] * buckets
            for when in finishes:
                counts[min(int((when - start) / step), buckets - 1)] += 1
            total = 0
            for i, n in enumerate(counts):
                total += n
                rows.append((start + i * step, n, round(n / interval_sec, 3), total))
        return Table(("time", "finished", "per_sec", "total"), rows, title="throughput")

    def utilization(
        self, batch_job_id: int | None = None, *, site_id: int | None = None, since: datetime | None = None
    ) -> Table:
        """Nodes busy with RUNNING jobs at each change: ``time``, ``running`` (jobs),
        ``busy_nodes`` (a job counts num_nodes / node_packing_count) and, for an allocation
        (``batch_job_id``), ``nodes`` and ``utilization`` (busy / nodes)."""
        jobs = self._client.jobs.filter(batch_job_id=batch_job_id, site_id=site_id, updated_after=since)
        by_id = {j.id: j for j in jobs}
        events = self._events(jobs, [S.RUNNING, *_ENDS_RUN], None, since)
        total = self._client.batch_jobs.get(batch_job_id).num_nodes if batch_job_id is not None else None
        running: set[int] = set()
        busy = 0.0
        rows = []
        for e in events:
            job = by_id.get(e.job_id)
            if job is None:
                continue
            if e.to_state == S.RUNNING and e.job_id not in running:
                running.add(e.job_id)
                busy += _node_share(job)
            elif e.to_state in _ENDS_RUN and e.job_id in running:
                running.discard(e.job_id)
                busy -= _node_share(job)
            busy = max(busy, 0.0)
            row: tuple[object, ...] = (e.timestamp, len(running), round(busy, 6))
            if total is not None:
                row += (total, round(busy / total, 6) if total else 0.0)
            rows.append(row)
        columns = ("time", "running", "busy_nodes") + (("nodes", "utilization") if total is not None else ())
        title = f"utilization of batch job {batch_job_id}" if batch_job_id is not None else "busy nodes"
        return Table(columns, rows, title=title)

    def available_nodes(self, *, site_id: int | None = None) -> Table:
        """Running allocations now: ``batch_job``, ``site``, ``nodes``, ``busy_nodes``,
        ``available`` (nodes not busy with a RUNNING job of the allocation), ``time`` (UTC)."""
        now = datetime.now(UTC)
        rows = []
        for bj in self._client.batch_jobs.filter(site_id=site_id, state=BatchJobState.RUNNING):
            running = self._client.jobs.filter(batch_job_id=bj.id, state=S.RUNNING)
            busy = round(sum(_node_share(j) for j in running), 6)
            rows.append((bj.id, bj.site_id, bj.num_nodes, busy, max(bj.num_nodes - busy, 0.0), now))
        return Table(
            ("batch_job", "site", "nodes", "busy_nodes", "available", "time"), rows, title="nodes now"
        )
