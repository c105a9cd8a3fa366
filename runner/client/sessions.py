"""``client.sessions``: launcher sessions that acquire and hold jobs."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from runner.client._base import Manager, _changes, _encode_list
from runner.models import AcquireSpec, Job, JobReport, Page, ReportResult, Session, Tags


class SessionManager(Manager):
    """``client.sessions``: launcher sessions that acquire and hold jobs."""

    path = "/sessions"

    def create(self, site_id: int, batch_job_id: int | None = None, ttl_sec: float = 60.0) -> Session:
        body = {"site_id": site_id, "batch_job_id": batch_job_id, "ttl_sec": ttl_sec}
        result: Session = self._send("POST", Session, self.path, body)
        return result

    def heartbeat(self, id: int) -> Session:
        """Push the session's expiry forward."""
        result: Session = self._send("POST", Session, f"{self.path}/{id}/heartbeat")
        return result

    def acquire(
        self,
        id: int,
        spec: AcquireSpec | Mapping[str, Any] | None = None,
        *,
        max_num_jobs: int | None = None,
        max_nodes_per_job: int | None = None,
        max_aggregate_nodes: float | None = None,
        max_wall_time_min: float | None = None,
        serial_only: bool = False,
        filter_tags: Tags | None = None,
        app_ids: Sequence[int] | None = None,
        request_id: str | None = None,
    ) -> list[Job]:
        """Atomically take runnable jobs that fit (see ``AcquireSpec``); now held by the session.

        ``request_id`` makes a retry safe: keep sending the same one until an answer comes,
        and a lost answer's jobs come again instead of staying held by nobody who knows."""
        if spec is None:
            if max_num_jobs is None:
                raise TypeError("acquire() needs a spec or max_num_jobs")
            spec = _changes(
                max_num_jobs=max_num_jobs,
                max_nodes_per_job=max_nodes_per_job,
                max_aggregate_nodes=max_aggregate_nodes,
                max_wall_time_min=max_wall_time_min,
                serial_only=serial_only or None,
                filter_tags=filter_tags,
                app_ids=list(app_ids) if app_ids is not None else None,
                request_id=request_id,
            )
        result: list[Job] = self._send("POST", list[Job], f"{self.path}/{id}/acquire", spec)
        return result

    def report(self, id: int, reports: Sequence[JobReport]) -> ReportResult:
        """Tell the server what happened to the session's jobs (at most MAX_BULK, in order);
        each report is applied or answered as moot with the reason (``ReportResult``)."""
        raw = _encode_list(JobReport, reports)
        result: ReportResult = self._send("POST", ReportResult, f"{self.path}/{id}/reports", raw=raw)
        return result

    def report_json(self, id: int, reports: Sequence[str]) -> ReportResult:
        """``report`` for reports already encoded, each one ``JobReport`` as JSON (a
        launcher journals its reports as JSON before it sends them)."""
        raw = ("[" + ",".join(reports) + "]").encode()
        result: ReportResult = self._send("POST", ReportResult, f"{self.path}/{id}/reports", raw=raw)
        return result

    def delete(self, id: int) -> None:
        """End the session: held jobs are released, RUNNING ones go RUN_TIMEOUT."""
        self._delete(f"{self.path}/{id}")

    def filter(self, *, site_id: int | None = None, limit: int | None = None) -> list[Session]:
        return self._follow(Session, {"site_id": site_id}, limit)

    def page(self, *, site_id: int | None = None, limit: int = 100, offset: int = 0) -> Page[Session]:
        return self._page(Session, {"site_id": site_id, "limit": limit, "offset": offset})
