"""``client.batch_jobs``: allocations asked from the facility scheduler."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from runner.client._base import Manager, _changes, _chunks, _encode_list
from runner.models import MAX_BULK, BatchJob, BatchJobUpdate, JobMode, Page, Tags
from runner.states import BatchJobState


class BatchJobManager(Manager):
    """``client.batch_jobs``: allocations asked from the facility scheduler."""

    path = "/batch-jobs"

    def create(
        self,
        *,
        site_id: int,
        num_nodes: int,
        wall_time_min: int,
        job_mode: JobMode | str = JobMode.MPI,
        project: str = "",
        queue: str = "",
        filter_tags: Tags | None = None,
        options: dict[str, str] | None = None,
    ) -> BatchJob:
        body = dict(
            site_id=site_id,
            num_nodes=num_nodes,
            wall_time_min=wall_time_min,
            job_mode=job_mode,
            project=project,
            queue=queue,
            filter_tags=filter_tags or {},
            options=options or {},
        )
        result: BatchJob = self._send("POST", BatchJob, self.path, body)
        return result

    def get(self, id: int) -> BatchJob:
        return self._get_one(BatchJob, f"{self.path}/{id}")

    def filter(
        self,
        *,
        site_id: int | None = None,
        state: BatchJobState | str | Iterable[BatchJobState | str] | None = None,
        limit: int | None = None,
    ) -> list[BatchJob]:
        return self._follow(BatchJob, {"site_id": site_id, "state": state}, limit)

    def page(
        self,
        *,
        site_id: int | None = None,
        state: BatchJobState | str | Iterable[BatchJobState | str] | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> Page[BatchJob]:
        return self._page(BatchJob, {"site_id": site_id, "state": state, "limit": limit, "offset": offset})

    def update(
        self,
        id: int,
        *,
        state: BatchJobState | str | None = None,
        scheduler_id: str | None = None,
        start_time: datetime | None = None,
        end_time: datetime | None = None,
        status_info: dict[str, Any] | None = None,
    ) -> BatchJob:
        body = _changes(
            state=state,
            scheduler_id=scheduler_id,
            start_time=start_time,
            end_time=end_time,
            status_info=status_info,
        )
        result: BatchJob = self._send("PATCH", BatchJob, f"{self.path}/{id}", body)
        return result

    def bulk_update(self, updates: Iterable[BatchJobUpdate | Mapping[str, Any]]) -> list[BatchJob]:
        out: list[BatchJob] = []
        for chunk in _chunks(list(updates), MAX_BULK):
            raw = _encode_list(BatchJobUpdate, chunk)
            out.extend(self._send("PATCH", list[BatchJob], self.path, raw=raw))
        return out

    def delete(self, id: int) -> BatchJob:
        """Ask for deletion: the state becomes pending_deletion; the site agent cancels it."""
        result: BatchJob = self._send("DELETE", BatchJob, f"{self.path}/{id}")
        return result
