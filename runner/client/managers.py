"""One manager per REST resource; each method has an explicit keyword signature.

``client.jobs`` lives in ``runner.client.jobs``; the others are here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from runner.models import (
    MAX_BULK,
    AcquireSpec,
    App,
    AppCreate,
    AppKind,
    AppUpdate,
    BatchJob,
    BatchJobUpdate,
    Event,
    Hook,
    Job,
    JobMode,
    Page,
    Resources,
    Session,
    Site,
    SiteUpdate,
    Tags,
    TransferDirection,
    TransferItem,
    TransferItemUpdate,
    TransferState,
)
from runner.states import BatchJobState, JobState

if TYPE_CHECKING:
    pass

from runner.client._base import Manager, _as_list, _changes, _chunks, _encode_list, adapter
from runner.client.jobs import JobManager

# ---------------------------------------------------------------- sites


class SiteManager(Manager):
    """``client.sites``: the user's sites (one per site directory)."""

    path = "/sites"

    def create(
        self, *, name: str, path: str, hostname: str, settings_summary: dict[str, Any] | None = None
    ) -> Site:
        """Register a site. 409 (Conflict) if this user already has one of that name."""
        body = {"name": name, "path": path, "hostname": hostname, "settings_summary": settings_summary or {}}
        result: Site = self._send("POST", Site, self.path, body)
        return result

    def get(self, id: int) -> Site:
        return self._get_one(Site, f"{self.path}/{id}")

    def filter(self, *, name: str | None = None, limit: int | None = None) -> list[Site]:
        return self._follow(Site, {"name": name}, limit)

    def page(self, *, name: str | None = None, limit: int = 100, offset: int = 0) -> Page[Site]:
        return self._page(Site, {"name": name, "limit": limit, "offset": offset})

    def update(
        self,
        id: int,
        *,
        name: str | None = None,
        path: str | None = None,
        hostname: str | None = None,
        settings_summary: dict[str, Any] | None = None,
        last_heartbeat: datetime | None = None,
    ) -> Site:
        body = SiteUpdate(
            **_changes(
                name=name,
                path=path,
                hostname=hostname,
                settings_summary=settings_summary,
                last_heartbeat=last_heartbeat,
            )
        )
        result: Site = self._send("PATCH", Site, f"{self.path}/{id}", body)
        return result

    def heartbeat(self, id: int) -> Site:
        """Record that the site agent is alive now."""
        return self.update(id, last_heartbeat=datetime.now(UTC))

    def delete(self, id: int) -> None:
        """Delete the site and its apps, jobs and batch jobs."""
        self._delete(f"{self.path}/{id}")


# ---------------------------------------------------------------- apps


class SyncResult(list[App]):
    """What ``apps.sync`` did: the list of apps, plus which were created/updated/unchanged."""

    def __init__(self) -> None:
        super().__init__()
        self.created: list[App] = []
        self.updated: list[App] = []
        self.unchanged: list[App] = []
        self.deleted: list[App] = []

    @property
    def changed(self) -> bool:
        return bool(self.created or self.updated or self.deleted)


_APP_FIELDS = tuple(f for f in AppUpdate.model_fields)


def _app_differs(current: App, wanted: AppCreate) -> bool:
    for field in _APP_FIELDS:
        have, want = getattr(current, field), getattr(wanted, field)
        if isinstance(have, BaseModel):
            have = have.model_dump()
        if isinstance(want, BaseModel):
            want = want.model_dump()
        if have != want:
            return True
    return False


class AppManager(Manager):
    """``client.apps``: app definitions, usually synced from a site's ``apps/`` folder."""

    path = "/apps"

    def create(
        self,
        *,
        site_id: int,
        name: str,
        description: str = "",
        kind: AppKind | str = AppKind.SHELL,
        command_template: str | None = None,
        serialized_function: str | None = None,
        parameters: dict[str, Any] | None = None,
        default_resources: Resources | dict[str, Any] | None = None,
        environment: dict[str, str] | None = None,
        hooks: Sequence[Hook] | None = None,
    ) -> App:
        """Register an app. 409 if the site already has an app of that name."""
        body = _changes(
            site_id=site_id,
            name=name,
            description=description,
            kind=kind,
            command_template=command_template,
            serialized_function=serialized_function,
            parameters=parameters,
            default_resources=default_resources,
            environment=environment,
            hooks=list(hooks) if hooks is not None else None,
        )
        return self.create_from(body)

    def create_from(self, app: AppCreate | Mapping[str, Any]) -> App:
        """Register an app from an ``AppCreate`` (as ``runner.appdef`` makes them)."""
        result: App = self._send("POST", App, self.path, app)
        return result

    def get(self, id: int) -> App:
        return self._get_one(App, f"{self.path}/{id}")

    def filter(
        self, *, site_id: int | None = None, name: str | None = None, limit: int | None = None
    ) -> list[App]:
        return self._follow(App, {"site_id": site_id, "name": name}, limit)

    def page(
        self, *, site_id: int | None = None, name: str | None = None, limit: int = 100, offset: int = 0
    ) -> Page[App]:
        return self._page(App, {"site_id": site_id, "name": name, "limit": limit, "offset": offset})

    def update(
        self,
        id: int,
        *,
        description: str | None = None,
        kind: AppKind | str | None = None,
        command_template: str | None = None,
        serialized_function: str | None = None,
        parameters: dict[str, Any] | None = None,
        default_resources: Resources | dict[str, Any] | None = None,
        environment: dict[str, str] | None = None,
        hooks: Sequence[Hook] | None = None,
    ) -> App:
        body = _changes(
            description=description,
            kind=kind,
            command_template=command_template,
            serialized_function=serialized_function,
            parameters=parameters,
            default_resources=default_resources,
            environment=environment,
            hooks=list(hooks) if hooks is not None else None,
        )
        result: App = self._send("PATCH", App, f"{self.path}/{id}", body)
        return result

    def delete(self, id: int) -> None:
        self._delete(f"{self.path}/{id}")

    def sync(self, site_id: int, apps: Iterable[AppCreate], *, prune: bool = False) -> SyncResult:
        """Create or update the site's apps by name so the server matches ``apps``.

        Unchanged apps are left alone. With ``prune=True`` apps on the server that are
        not in ``apps`` are deleted (with their jobs). Returns the resulting apps in
        the order given, with ``.created``/``.updated``/``.unchanged``/``.deleted``.
        """
        wanted = list(apps)
        names = [a.name for a in wanted]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"duplicate app names: {', '.join(dupes)}")
        existing = {a.name: a for a in self.filter(site_id=site_id)}
        result = SyncResult()
        for app in wanted:
            if app.site_id != site_id:
                app = app.model_copy(update={"site_id": site_id})
            current = existing.get(app.name)
            if current is None:
                made = self.create_from(app)
                result.created.append(made)
            elif _app_differs(current, app):
                body = AppUpdate.model_validate({f: getattr(app, f) for f in _APP_FIELDS})
                made = self._send("PATCH", App, f"{self.path}/{current.id}", body.model_dump(mode="json"))
                result.updated.append(made)
            else:
                made = current
                result.unchanged.append(made)
            result.append(made)
        if prune:
            for name, current in existing.items():
                if name not in names:
                    self.delete(current.id)
                    result.deleted.append(current)
        return result


# ---------------------------------------------------------------- events and transfers


class EventManager(Manager):
    """``client.events``: the state history of jobs (one row per transition)."""

    path = "/events"

    def _params(self, **kw: Any) -> dict[str, Any]:
        return kw

    def filter(
        self,
        *,
        job_id: int | None = None,
        site_id: int | None = None,
        to_state: JobState | str | None = None,
        from_state: JobState | str | None = None,
        after: datetime | None = None,
        before: datetime | None = None,
        ordering: str | None = None,
        limit: int | None = None,
    ) -> list[Event]:
        params = dict(
            job_id=job_id,
            site_id=site_id,
            to_state=to_state,
            from_state=from_state,
            after=after,
            before=before,
            ordering=ordering,
        )
        return self._follow(Event, params, limit)

    def page(
        self,
        *,
        job_id: int | None = None,
        site_id: int | None = None,
        to_state: JobState | str | None = None,
        from_state: JobState | str | None = None,
        after: datetime | None = None,
        before: datetime | None = None,
        ordering: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> Page[Event]:
        params = dict(
            job_id=job_id,
            site_id=site_id,
            to_state=to_state,
            from_state=from_state,
            after=after,
            before=before,
            ordering=ordering,
            limit=limit,
            offset=offset,
        )
        return self._page(Event, params)


class TransferManager(Manager):
    """``client.transfers``: stage-in/stage-out items of jobs (driven by the site agent)."""

    path = "/transfers"

    def filter(
        self,
        *,
        site_id: int | None = None,
        job_id: int | Sequence[int] | None = None,
        state: TransferState | str | None = None,
        direction: TransferDirection | str | None = None,
        limit: int | None = None,
    ) -> list[TransferItem]:
        params = dict(site_id=site_id, job_id=job_id, state=state, direction=direction)
        return self._follow(TransferItem, params, limit)

    def page(
        self,
        *,
        site_id: int | None = None,
        job_id: int | Sequence[int] | None = None,
        state: TransferState | str | None = None,
        direction: TransferDirection | str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> Page[TransferItem]:
        params = dict(
            site_id=site_id, job_id=job_id, state=state, direction=direction, limit=limit, offset=offset
        )
        return self._page(TransferItem, params)

    def bulk_update(self, updates: Iterable[TransferItemUpdate | Mapping[str, Any]]) -> list[TransferItem]:
        out: list[TransferItem] = []
        for chunk in _chunks(list(updates), MAX_BULK):
            out.extend(
                self._send(
                    "PATCH", list[TransferItem], self.path, raw=_encode_list(TransferItemUpdate, chunk)
                )
            )
        return out


# ---------------------------------------------------------------- batch jobs and sessions


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
        return self._follow(BatchJob, {"site_id": site_id, "state": _as_list(state)}, limit)

    def page(
        self,
        *,
        site_id: int | None = None,
        state: BatchJobState | str | Iterable[BatchJobState | str] | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> Page[BatchJob]:
        return self._page(
            BatchJob, {"site_id": site_id, "state": _as_list(state), "limit": limit, "offset": offset}
        )

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
    ) -> list[Job]:
        """Atomically take runnable jobs that fit (see ``AcquireSpec``); now held by the session."""
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
            )
        result: list[Job] = self._send("POST", list[Job], f"{self.path}/{id}/acquire", spec)
        return result

    def delete(self, id: int) -> None:
        """End the session: held jobs are released, RUNNING ones go RUN_TIMEOUT."""
        self._delete(f"{self.path}/{id}")

    def filter(self, *, site_id: int | None = None, limit: int | None = None) -> list[Session]:
        return self._follow(Session, {"site_id": site_id}, limit)

    def page(self, *, site_id: int | None = None, limit: int = 100, offset: int = 0) -> Page[Session]:
        return self._page(Session, {"site_id": site_id, "limit": limit, "offset": offset})


__all__ = [
    "AppManager",
    "BatchJobManager",
    "EventManager",
    "JobManager",
    "SessionManager",
    "SiteManager",
    "SyncResult",
    "TransferManager",
    "adapter",
]
