"""``client.jobs``: create, list, change, delete and wait for jobs."""

from __future__ import annotations

import inspect
import secrets
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal, TypeVar, Unpack, overload

from runner.client import failures
from runner.client._base import Manager, _changes, _chunks, _encode_list, _parse
from runner.client.dag import JobBatch
from runner.client.errors import JobsFailed, NotFound, WaitTimeout
from runner.client.failures import UNSUCCESSFUL
from runner.client.handles import JobHandle
from runner.client.results import JobList
from runner.models import (
    MAX_BULK,
    App,
    AppKind,
    DeleteResult,
    Job,
    JobCreate,
    JobFilter,
    JobFilterKwargs,
    JobUpdate,
    Page,
    Resources,
    StateCount,
    Tags,
    TransferItemCreate,
)
from runner.payload import dumps
from runner.states import FINAL, JobState

if TYPE_CHECKING:
    from runner.client._http import HTTP


def _filter_params(filters: Mapping[str, Any]) -> dict[str, Any]:
    """The query parameters of JobFilter keywords, sent as given: the server validates them,
    so a bad value comes back as InvalidRequest naming the field."""
    unknown = sorted(set(filters) - set(JobFilter.model_fields))
    if unknown:
        raise TypeError(
            f"unexpected keyword argument {', '.join(map(repr, unknown))}; "
            f"the job filters are {', '.join(JobFilter.model_fields)}"
        )
    params = {name: value for name, value in filters.items() if value is not None}
    if not params.get("tags", True):
        del params["tags"]  # tags={} filters nothing
    return params


_M = TypeVar("_M", bound=Callable[..., Any])


def _written(annotations: Mapping[str, Any]) -> dict[str, Any]:
    return {name: getattr(a, "__forward_arg__", a) for name, a in annotations.items()}


def _filter_keywords(method: _M) -> _M:
    """Show the job filters as keyword parameters in ``help()`` and ``inspect.signature``.

    The methods take ``**filters: Unpack[JobFilterKwargs]`` (type checkers and editors
    expand that); this spells the same keywords out for people reading ``help()``.
    """
    sig = inspect.signature(method)
    params = [p for p in sig.parameters.values() if p.kind is not inspect.Parameter.VAR_KEYWORD]
    positional = [p for p in params if p.kind is not inspect.Parameter.KEYWORD_ONLY]
    filters = [
        # the annotation as written (a TypedDict keeps it as a ForwardRef), like the rest of the signature
        inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=annotation)
        for name, annotation in _written(JobFilterKwargs.__annotations__).items()
    ]
    keywords = [p for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY]
    method.__signature__ = sig.replace(parameters=[*positional, *filters, *keywords])  # type: ignore[attr-defined]
    return method


def _parents_of(job: JobCreate | Mapping[str, Any]) -> list[int | str]:
    if isinstance(job, JobCreate):
        return list(job.parents)
    return list(job.get("parents") or [])


def _key_of(job: JobCreate | Mapping[str, Any]) -> str | None:
    return job.key if isinstance(job, JobCreate) else job.get("key")


def _with_parents(job: JobCreate | Mapping[str, Any], parents: list[int | str]) -> JobCreate | dict[str, Any]:
    if isinstance(job, JobCreate):
        return job.model_copy(update={"parents": parents})
    return {**job, "parents": parents}


def _with_idempotency_keys(
    items: Sequence[JobCreate | Mapping[str, Any]],
) -> list[JobCreate | Mapping[str, Any]]:
    """``items``, each with an idempotency key: the caller's, else ``<random>.<index>``
    (64 random bits per request: unique among the owner's jobs, and short)."""
    prefix = secrets.token_hex(8)
    out: list[JobCreate | Mapping[str, Any]] = []
    for i, job in enumerate(items):
        if isinstance(job, JobCreate):
            if job.idempotency_key is None:
                job = job.model_copy(update={"idempotency_key": f"{prefix}.{i}"})
        elif job.get("idempotency_key") is None:
            job = {**job, "idempotency_key": f"{prefix}.{i}"}
        out.append(job)
    return out


def _chunk_size(size: int) -> int:
    if not 1 <= size <= MAX_BULK:
        raise ValueError(f"chunk_size must be between 1 and {MAX_BULK}, not {size}")
    return size


class JobManager(Manager):
    """``client.jobs``: create, list, change and delete jobs, in bulk where it matters."""

    path = "/jobs"

    def __init__(self, http: HTTP) -> None:
        super().__init__(http)
        self._kinds: dict[int, AppKind] = {}

    # ---- create

    def bulk_create(
        self, jobs: Iterable[JobCreate | Mapping[str, Any]], *, chunk_size: int = MAX_BULK
    ) -> list[Job]:
        """Create many jobs; returns them in the order given.

        Requests carry at most ``chunk_size`` (<= ``MAX_BULK``) jobs; each request is
        all-or-nothing. A job may name as parent the ``key`` of an earlier job in the
        list, even one sent in an earlier request (the key is replaced by the created id).

        Jobs with an ``idempotency_key`` that you used before are not created again: the
        answer holds the existing job (as it is now). Jobs without one get a key made up
        for the request, so the client's own resend after a timeout is safe.
        """
        items = list(jobs)
        size = _chunk_size(chunk_size)
        if len(items) <= size:
            return self._create_chunk(items)
        created: list[Job] = []
        key_ids: dict[str, int] = {}
        for chunk in _chunks(items, size):
            chunk_keys = {k for k in (_key_of(j) for j in chunk) if k is not None}
            prepared: list[JobCreate | Mapping[str, Any]] = []
            for job in chunk:
                parents = _parents_of(job)
                if any(isinstance(p, str) and p not in chunk_keys for p in parents):
                    resolved: list[int | str] = []
                    for p in parents:
                        if isinstance(p, str) and p not in chunk_keys:
                            if p not in key_ids:
                                raise ValueError(
                                    f"job key {_key_of(job)!r}: parent key {p!r} is not an earlier job "
                                    f"of this list (with more than {size} jobs, parents must come "
                                    "before their children)"
                                )
                            resolved.append(key_ids[p])
                        else:
                            resolved.append(p)
                    job = _with_parents(job, resolved)
                prepared.append(job)
            made = self._create_chunk(prepared)
            for job, result in zip(chunk, made, strict=True):
                key = _key_of(job)
                if key is not None:
                    key_ids[key] = result.id
            created.extend(made)
        return created

    def _create_chunk(self, items: Sequence[JobCreate | Mapping[str, Any]]) -> list[Job]:
        if not items:
            return []
        # Every job gets an idempotency key (the caller's, or one made here), so that a request
        # whose answer was lost can be sent again without creating anything twice.
        raw = _encode_list(JobCreate, _with_idempotency_keys(items))
        result: list[Job] = self._send("POST", list[Job], self.path, raw=raw, resend_after_timeout=True)
        return result

    def create(
        self,
        app_id: int,
        *,
        parameters: dict[str, Any] | None = None,
        tags: Tags | None = None,
        parents: Sequence[int | Job | JobHandle] | None = None,
        resources: Resources | dict[str, Any] | None = None,
        environment: dict[str, str] | None = None,
        workdir: str | None = None,
        retry_limit: int | None = None,
        transfers: Sequence[TransferItemCreate | dict[str, Any]] | None = None,
        serialized_args: str | None = None,
        data: dict[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> Job:
        """Create one job. ``parents`` may be ids, Jobs or JobHandles (HyperQueue-style deps).

        ``idempotency_key``: your name for this job, unique among your jobs for good; calling
        ``create`` again with it answers the job made the first time (a script that died
        after sending can be run again). Without one the client makes one up, which covers
        its own retries of this call.
        """
        body = _changes(
            app_id=app_id,
            idempotency_key=idempotency_key,
            parameters=parameters,
            tags=tags,
            parents=[_id(p) for p in parents] if parents else None,
            resources=resources,
            environment=environment,
            workdir=workdir,
            retry_limit=retry_limit,
            transfers=list(transfers) if transfers is not None else None,
            serialized_args=serialized_args,
            data=data,
        )
        return self._create_chunk([body])[0]

    def submit(
        self,
        app: App | int,
        *args: Any,
        parameters: Mapping[str, Any] | None = None,
        tags: Tags | None = None,
        parents: Sequence[JobHandle | Job | int] | None = None,
        resources: Resources | dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> JobHandle:
        """Create one job and return its handle (``.result()``, ``.wait()``; a parent of later jobs).

        For a python-function app ``args`` and ``kwargs`` are the call's arguments; for a
        command app ``kwargs`` are its parameters (as ``parameters=`` is for both).
        """
        return self.map(
            app, [args], parameters=parameters, tags=tags, parents=parents, resources=resources, kwargs=kwargs
        )[0]

    def map(
        self,
        app: App | int,
        arguments: Iterable[Any],
        *,
        parameters: Mapping[str, Any] | None = None,
        tags: Tags | None = None,
        parents: Sequence[JobHandle | Job | int] | None = None,
        resources: Resources | dict[str, Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
    ) -> list[JobHandle]:
        """One job per element of ``arguments``, created in one request; their handles in order.

        For a python-function app each element is the call's argument (a tuple: its
        positional arguments); for a command app each element is a dict of parameters.
        """
        app_obj = app if isinstance(app, App) else self._app(app)
        python = app_obj.kind is AppKind.PYTHON
        bodies = []
        for item in arguments:
            body: dict[str, Any] = {
                "app_id": app_obj.id,
                "parameters": dict(parameters or {}),
                "tags": dict(tags or {}),
                "parents": [p.id if isinstance(p, Job | JobHandle) else p for p in parents or ()],
            }
            if resources is not None:
                body["resources"] = resources
            if python:
                call_args = item if isinstance(item, tuple) else (item,)
                body["serialized_args"] = dumps((tuple(call_args), dict(kwargs or {})))
            else:
                if item and not isinstance(item, Mapping):
                    raise TypeError(f"app {app_obj.name!r} runs a command: give its parameters as dicts")
                body["parameters"].update(dict(item or {}), **dict(kwargs or {}))
            bodies.append(body)
        return [JobHandle(self, job, kind=app_obj.kind) for job in self.bulk_create(bodies)]

    def handle(self, job: Job | int) -> JobHandle:
        """A handle of an existing job."""
        return JobHandle(self, job if isinstance(job, Job) else self.get(job))

    def _app(self, app_id: int) -> App:
        return self._get_one(App, f"/apps/{app_id}")

    def app_kind(self, app_id: int) -> AppKind:
        if app_id not in self._kinds:
            self._kinds[app_id] = self._app(app_id).kind
        return self._kinds[app_id]

    def batch(self) -> JobBatch:
        """A builder for many jobs with dependencies, sent in one request by ``submit()``."""
        return JobBatch(self)

    # ---- read

    def get(self, id: int) -> Job:
        return self._get_one(Job, f"{self.path}/{id}")

    @_filter_keywords
    def filter(
        self, *, ordering: str | None = None, limit: int | None = None, **filters: Unpack[JobFilterKwargs]
    ) -> JobList:
        """Every matching job (following pages), at most ``limit``.

        ``id`` and ``state`` take one value or several (any matches); ``tags`` must all
        match; ``ordering`` is one of id, -id, updated_at, -updated_at, created_at,
        -created_at, state.
        """
        return JobList(
            self._follow(Job, {**_filter_params(filters), "ordering": ordering or "id"}, limit), self
        )

    @_filter_keywords
    def page(
        self,
        *,
        ordering: str | None = None,
        limit: int = 100,
        offset: int = 0,
        **filters: Unpack[JobFilterKwargs],
    ) -> Page[Job]:
        """One page of matching jobs with the total ``count``."""
        params = {**_filter_params(filters), "ordering": ordering, "limit": limit, "offset": offset}
        return self._page(Job, params)

    @_filter_keywords
    def count(self, **filters: Unpack[JobFilterKwargs]) -> int:
        """How many jobs match."""
        return self.page(limit=1, **filters).count

    @_filter_keywords
    def counts(self, **filters: Unpack[JobFilterKwargs]) -> dict[JobState, int]:
        """Matching jobs per state (states with no job are left out)."""
        resp = self._http.request("GET", f"{self.path}/counts", params=_filter_params(filters))
        rows: list[StateCount] = _parse(list[StateCount], resp.content)
        return {r.state: r.count for r in rows if r.count}

    # ---- change

    @overload
    def bulk_update(
        self,
        updates: Iterable[JobUpdate | Mapping[str, Any]],
        *,
        chunk_size: int = ...,
        returning: Literal[True] = ...,
    ) -> list[Job]: ...

    @overload
    def bulk_update(
        self,
        updates: Iterable[JobUpdate | Mapping[str, Any]],
        *,
        chunk_size: int = ...,
        returning: Literal[False],
    ) -> None: ...

    def bulk_update(
        self,
        updates: Iterable[JobUpdate | Mapping[str, Any]],
        *,
        chunk_size: int = MAX_BULK,
        returning: bool = True,
    ) -> list[Job] | None:
        """Change many jobs (each update names its ``id``); all-or-nothing per request.

        Split into requests of at most ``chunk_size`` (<= ``MAX_BULK``). Models are sent
        without being validated again; dicts are validated by the server.
        ``returning=False`` asks the server not to send the jobs back (the launcher's
        hot path, where nobody reads them) and returns None.
        """
        items = list(updates)
        out: list[Job] = []
        for chunk in _chunks(items, _chunk_size(chunk_size)):
            raw = _encode_list(JobUpdate, chunk)
            if returning:
                out.extend(self._send("PATCH", list[Job], self.path, raw=raw))
            else:
                self._http.request("PATCH", self.path, params={"returning": "false"}, raw_body=raw)
        return out if returning else None

    def update(
        self,
        id: int,
        *,
        state: JobState | str | None = None,
        state_timestamp: datetime | None = None,
        state_data: dict[str, Any] | None = None,
        return_code: int | None = None,
        tags: Tags | None = None,
        parameters: dict[str, Any] | None = None,
        data: dict[str, Any] | None = None,
        retry_limit: int | None = None,
        resources: Resources | dict[str, Any] | None = None,
    ) -> Job:
        """Change one job; a ``state`` the life cycle forbids raises Conflict (409)."""
        body = _changes(
            state=state,
            state_timestamp=state_timestamp,
            state_data=state_data,
            return_code=return_code,
            tags=tags,
            parameters=parameters,
            data=data,
            retry_limit=retry_limit,
            resources=resources,
        )
        result: Job = self._send("PATCH", Job, f"{self.path}/{id}", body)
        return result

    def delete(self, id: int) -> None:
        self._delete(f"{self.path}/{id}")

    @_filter_keywords
    def delete_where(self, **filters: Unpack[JobFilterKwargs]) -> int:
        """Delete every matching job; returns how many. At least one filter is required."""
        params = _filter_params(filters)
        if not params:
            raise ValueError("delete_where needs at least one filter")
        resp = self._http.request("DELETE", self.path, params=params)
        result: DeleteResult = _parse(DeleteResult, resp.content)
        return result.deleted

    # ---- wait

    def as_completed(
        self,
        ids: Iterable[int | Job | JobHandle],
        *,
        states: Iterable[JobState | str] = FINAL,
        timeout: float | None = None,
        poll_sec: float = 1.0,
    ) -> Iterator[Job]:
        """Yield each job as it reaches one of ``states`` (default: a final state), in the
        order they get there (like ``concurrent.futures.as_completed``).

        Raises WaitTimeout listing the jobs still pending once ``timeout`` seconds have
        passed, NotFound for an id that does not exist. A failed job is yielded like any
        other: look at its ``state`` (``wait`` raises instead).
        """
        want = list(dict.fromkeys(_id(j) for j in ids))
        targets = {JobState(s) for s in states}
        deadline = None if timeout is None else time.monotonic() + timeout
        pending = list(want)
        last: dict[int, Job] = {}
        while pending:
            reached: list[Job] = []
            for chunk in _chunks(pending, 1_000):
                for job in self.filter(id=chunk):
                    last[job.id] = job
                    if job.state in targets:
                        reached.append(job)
            missing = [i for i in pending if i not in last]
            if missing:
                raise NotFound(404, f"jobs not found: {_some(missing)}")
            done_ids = {j.id for j in reached}
            pending = [i for i in pending if i not in done_ids]
            yield from sorted(reached, key=lambda j: (j.updated_at, j.id))
            if not pending:
                return
            if deadline is not None and time.monotonic() >= deadline:
                shown = _some([f"{i}={last[i].state.value}" for i in pending])
                raise WaitTimeout(
                    f"{len(pending)} of {len(want)} jobs not in {sorted(s.value for s in targets)} after "
                    f"{timeout}s: {shown}",
                    {i: last[i].state.value for i in pending},
                )
            time.sleep(poll_sec if deadline is None else max(0.0, min(poll_sec, deadline - time.monotonic())))

    def wait(
        self,
        ids: Iterable[int | Job | JobHandle],
        *,
        states: Iterable[JobState | str] = FINAL,
        timeout: float | None = None,
        poll_sec: float = 1.0,
        raise_on_failure: bool = True,
    ) -> JobList:
        """Block until every job is in one of ``states`` (default: a final state).

        Returns the jobs in the order given. A job that ended FAILED or KILLED raises
        JobsFailed, which lists each with its reason and the path of its output
        (``raise_on_failure=False`` returns them instead). On timeout raises WaitTimeout
        listing the jobs still pending and their states; an id that does not exist
        raises NotFound.
        """
        want = [_id(j) for j in ids]
        targets = {JobState(s) for s in states}
        if raise_on_failure:
            targets |= UNSUCCESSFUL  # a failed job never reaches another target: report it now
        done = {j.id: j for j in self.as_completed(want, states=targets, timeout=timeout, poll_sec=poll_sec)}
        result = JobList([done[i] for i in want], self)
        if raise_on_failure:
            self.raise_failed(result)
        return result

    def raise_failed(self, jobs: Sequence[Job]) -> None:
        """Raise JobsFailed if any of ``jobs`` ended FAILED or KILLED (with reasons and outputs)."""
        found = failures.explain(self._http, jobs)
        if not found:
            return
        listed = list(found.values())
        shown = _some([str(f) for f in listed], n=10)
        raise JobsFailed(
            f"{len(listed)} of {len(jobs)} jobs did not finish: {shown}",
            [j for j in jobs if j.id in found],
            {f.job_id: f.output_path for f in listed},
            listed,
        )

    def explain(self, jobs: Iterable[Job]) -> dict[int, failures.Failure]:
        """job id -> why it failed (reason, output path, tail, traceback), for the FAILED/KILLED ones."""
        return failures.explain(self._http, jobs)


def _id(job: int | Job | JobHandle) -> int:
    return job if isinstance(job, int) else job.id


def _some(items: Sequence[Any], n: int = 20) -> str:
    more = f" and {len(items) - n} more" if len(items) > n else ""
    return ", ".join(str(i) for i in items[:n]) + more
