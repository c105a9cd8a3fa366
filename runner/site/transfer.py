"""The transfer service: stages files in for READY jobs and out for POSTPROCESSED ones.

Each round it

1. resends item reports the server has not taken yet (it was down);
2. asks the backends about the tasks in flight: a finished task's items become
   ``done`` (the server then moves the job on), a failed task's items are retried
   after a pause that doubles per attempt, and after ``transfer.retry_limit``
   retries they become ``error`` with the reason (the server fails the job);
3. on its first round, adopts items left ``active`` by a previous agent (asks
   their backend; a task it does not know is retried);
4. groups the pending items of those jobs per (location, direction) into tasks of
   at most ``max_items_per_task`` items, at most ``max_concurrent_tasks`` in flight
   per location, submits them and reports the items ``active`` with the task id.

An item is reported ``done`` only when its backend said its task finished, and
the local backend says so only after the bytes are on disk. All reports go in one
bulk request per round.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from runner.models import Job, TransferDirection, TransferItem, TransferItemUpdate, TransferState
from runner.platform import transfer as backends
from runner.platform.transfer import FileTransfer, TaskState, TransferBackend, TransferBackendError
from runner.site.service import Service, SiteContext, register_service
from runner.states import JobState

log = logging.getLogger("tolu.site.transfer")

#: job ids per ``GET /transfers`` (they go into the query string).
JOB_IDS_PER_QUERY = 200
#: the job state in which each direction's items are moved.
STAGE_STATE = {TransferDirection.IN: JobState.READY, TransferDirection.OUT: JobState.POSTPROCESSED}


class ItemProblem(ValueError):
    """An item that can never be transferred as written (bad location or path)."""


@dataclass
class Task:
    task_id: str
    location: str
    direction: TransferDirection
    item_ids: list[int]
    submitted: float = field(default_factory=time.monotonic)


@dataclass(frozen=True)
class Resolved:
    item: TransferItem
    location: str
    file: FileTransfer


@register_service("transfer")
class TransferService(Service):
    def __init__(self, ctx: SiteContext) -> None:
        super().__init__(ctx)
        self.cfg = ctx.settings.transfer
        self.period_sec = self.cfg.poll_interval_sec
        self.backends: dict[str, TransferBackend] = {}
        self.tasks: dict[str, Task] = {}
        self.attempts: dict[int, int] = {}
        self.not_before: dict[int, float] = {}
        self.unsent: dict[int, TransferItemUpdate] = {}
        self.adopted = False

    # ------------------------------------------------------------ round

    def run_once(self) -> None:
        self.flush()
        self.poll()
        if not self.adopted:
            self.adopt()
            self.adopted = True
        self.submit_pending()
        self.flush()

    def close(self) -> None:
        for backend in self.backends.values():
            backend.close()
        self.backends.clear()

    # ------------------------------------------------------------ reporting

    def report(
        self, item_id: int, state: TransferState, *, task_id: str | None = None, error: str | None = None
    ) -> None:
        self.unsent[item_id] = TransferItemUpdate(id=item_id, state=state, task_id=task_id, error=error)

    def flush(self) -> None:
        if not self.unsent:
            return
        updates = list(self.unsent.values())
        self.ctx.client.transfers.bulk_update(updates)
        for u in updates:
            if self.unsent.get(u.id) is u:
                del self.unsent[u.id]

    # ------------------------------------------------------------ backends

    def backend(self, location: str) -> TransferBackend:
        if location not in self.backends:
            spec = self.cfg.locations[location]
            name, endpoint = backends.parse_location(spec)
            self.backends[location] = backends.get(name)(endpoint, self.cfg)
        return self.backends[location]

    def in_flight(self, location: str) -> int:
        return sum(1 for t in self.tasks.values() if t.location == location)

    # ------------------------------------------------------------ poll

    def poll(self) -> None:
        by_location: dict[str, list[Task]] = defaultdict(list)
        for task in self.tasks.values():
            by_location[task.location].append(task)
        for location, tasks in by_location.items():
            try:
                statuses = self.backend(location).status([t.task_id for t in tasks])
            except TransferBackendError as exc:
                log.warning("cannot ask %s about %d tasks (will ask again): %s", location, len(tasks), exc)
                continue
            for task in tasks:
                status = statuses.get(task.task_id)
                if status is None or status.state == TaskState.ACTIVE:
                    continue
                del self.tasks[task.task_id]
                if status.state == TaskState.DONE:
                    log.info(
                        "stage-%s task %s (%s, %d items) done",
                        task.direction.value,
                        task.task_id,
                        location,
                        len(task.item_ids),
                    )
                    for item_id in task.item_ids:
                        self.attempts.pop(item_id, None)
                        self.not_before.pop(item_id, None)
                        self.report(item_id, TransferState.DONE, task_id=task.task_id)
                else:
                    reason = status.detail or "task failed"
                    self.failed(task.item_ids, task.direction, location, reason, task.task_id)

    def failed(
        self,
        item_ids: Sequence[int],
        direction: TransferDirection,
        location: str,
        reason: str,
        task_id: str | None = None,
    ) -> None:
        """Retry after a pause that doubles per attempt; after the limit, ``error`` with the reason."""
        gave_up = 0
        for item_id in item_ids:
            attempts = self.attempts.get(item_id, 0) + 1
            self.attempts[item_id] = attempts
            if attempts > self.cfg.retry_limit:
                gave_up += 1
                self.attempts.pop(item_id, None)
                self.not_before.pop(item_id, None)
                error = f"stage-{direction.value} via {location} failed after {attempts} attempts: {reason}"
                self.report(item_id, TransferState.ERROR, task_id=task_id, error=error)
            else:
                pause = self.cfg.retry_backoff_sec * 2 ** (attempts - 1)
                self.not_before[item_id] = time.monotonic() + pause
                self.report(item_id, TransferState.PENDING)
        log.warning(
            "stage-%s via %s failed for %d items (%d will be retried, %d set to error): %s",
            direction.value,
            location,
            len(item_ids),
            len(item_ids) - gave_up,
            gave_up,
            reason,
        )

    # ------------------------------------------------------------ adopt

    def adopt(self) -> None:
        """Take over the items a previous agent left ``active``."""
        items = self.ctx.client.transfers.filter(site_id=self.ctx.site_id, state=TransferState.ACTIVE)
        groups: dict[str, list[TransferItem]] = defaultdict(list)
        for item in items:
            if item.id in self.unsent or any(item.id in t.item_ids for t in self.tasks.values()):
                continue
            groups[item.task_id or ""].append(item)
        for task_id, group in groups.items():
            direction = group[0].direction
            try:
                location = self.location_of(group[0])
            except ItemProblem as exc:
                for item in group:
                    self.report(item.id, TransferState.ERROR, error=str(exc))
                continue
            if not task_id:
                self.failed([i.id for i in group], direction, location, "active item without a task id")
                continue
            self.tasks[task_id] = Task(task_id, location, direction, [i.id for i in group])
            log.info(
                "adopted stage-%s task %s (%s, %d items)", direction.value, task_id, location, len(group)
            )

    # ------------------------------------------------------------ submit

    def submit_pending(self) -> None:
        capacity = {loc: self.cfg.max_concurrent_tasks - self.in_flight(loc) for loc in self.cfg.locations}
        if not any(c > 0 for c in capacity.values()):
            return
        busy = {i for t in self.tasks.values() for i in t.item_ids}
        now = time.monotonic()
        # Enough jobs to fill the free task slots even when the oldest ones are all
        # in flight or waiting for a retry (those come first in id order).
        free = sum(max(0, c) for c in capacity.values())
        limit = free * self.cfg.max_items_per_task + len(busy) + len(self.not_before)
        jobs = {
            j.id: j
            for j in self.ctx.client.jobs.filter(
                site_id=self.ctx.site_id, state=[JobState.READY, JobState.POSTPROCESSED], limit=limit
            )
        }
        wanted: list[Resolved] = []
        for direction, state in STAGE_STATE.items():
            ids = [j.id for j in jobs.values() if j.state == state]
            for item in self.pending_items(ids, direction):
                job = jobs[item.job_id]
                if item.id in busy or item.id in self.unsent or self.not_before.get(item.id, 0.0) > now:
                    continue
                try:
                    wanted.append(self.resolve(item, job))
                except ItemProblem as exc:
                    self.report(item.id, TransferState.ERROR, error=str(exc))
        groups: dict[tuple[str, TransferDirection], list[Resolved]] = defaultdict(list)
        for r in wanted:
            groups[(r.location, r.item.direction)].append(r)
        for (location, direction), group in groups.items():
            for chunk in _chunks(group, self.cfg.max_items_per_task):
                if capacity[location] <= 0:
                    break
                capacity[location] -= 1
                self.submit(location, direction, chunk)

    def pending_items(self, job_ids: Sequence[int], direction: TransferDirection) -> list[TransferItem]:
        """The pending items of these jobs in one direction (a request per JOB_IDS_PER_QUERY jobs)."""
        items: list[TransferItem] = []
        for start in range(0, len(job_ids), JOB_IDS_PER_QUERY):
            chunk = list(job_ids[start : start + JOB_IDS_PER_QUERY])
            items += self.ctx.client.transfers.filter(
                site_id=self.ctx.site_id,
                job_id=chunk,
                state=TransferState.PENDING,
                direction=direction,
            )
        return items

    def submit(self, location: str, direction: TransferDirection, chunk: Sequence[Resolved]) -> None:
        ids = [r.item.id for r in chunk]
        try:
            task_id = self.backend(location).submit(direction, [r.file for r in chunk])
        except TransferBackendError as exc:
            self.failed(ids, direction, location, str(exc))
            return
        except Exception as exc:  # a backend bug must not lose the items: count it as a failed attempt
            self.failed(ids, direction, location, f"{type(exc).__name__}: {exc}")
            return
        self.tasks[task_id] = Task(task_id, location, direction, ids)
        for item_id in ids:
            self.report(item_id, TransferState.ACTIVE, task_id=task_id)
        log.info("stage-%s task %s submitted to %s (%d items)", direction.value, task_id, location, len(ids))

    # ------------------------------------------------------------ items

    def location_of(self, item: TransferItem) -> str:
        remote = item.source if item.direction == TransferDirection.IN else item.destination
        return self.split_remote(remote)[0]

    def split_remote(self, remote: str) -> tuple[str, str]:
        alias, sep, path = remote.partition(":")
        if not sep or not path:
            raise ItemProblem(f"{remote!r} is not LOCATION:PATH")
        if alias not in self.cfg.locations:
            known = ", ".join(sorted(self.cfg.locations)) or "none"
            raise ItemProblem(f"{remote!r}: unknown transfer location {alias!r} (this site knows: {known})")
        return alias, path

    def resolve(self, item: TransferItem, job: Job) -> Resolved:
        inbound = item.direction == TransferDirection.IN
        remote, local = (item.source, item.destination) if inbound else (item.destination, item.source)
        location, remote_path = self.split_remote(remote)
        workdir = self.ctx.workdir(job.workdir).resolve()
        local_path = _inside(workdir, local)
        return Resolved(item, location, FileTransfer(remote_path, local_path, item.recursive))


def _inside(workdir: Path, relative: str) -> Path:
    if Path(relative).is_absolute():
        raise ItemProblem(f"{relative!r}: the local end must be relative to the job's workdir")
    path = (workdir / relative).resolve()
    if not path.is_relative_to(workdir):
        raise ItemProblem(f"{relative!r} leaves the job's workdir {workdir}")
    return path


def _chunks(items: Sequence[Resolved], size: int) -> Iterable[Sequence[Resolved]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
