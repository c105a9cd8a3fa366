"""``client.jobs``: create, list, change, delete and wait for jobs."""

from __future__ import annotations

import inspect
import secrets
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, Literal, TypeVar, Unpack, overload

from runner.client._base import Manager, _changes, _chunks, _encode_list, _parse
from runner.client.dag import JobBatch
from runner.client.errors import JobsFailed, NotFound, WaitTimeout
from runner.models import (
    MAX_BULK,
    DeleteResult,
    Job,
    JobCreate,
    JobFilter,
    JobFilterKwargs,
    JobUpdate,
    Page,
    Resources,
    Site,
    StateCount,
    Tags,
    TransferItemCreate,
)
from runner.states import FINAL, JobState


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


#: the file in a job's workdir that holds its stdout and stderr (see team contracts).
JOB_OUTPUT = "job.out"


def _chunk_size(size: int) -> int:
    if not 1 <= size <= MAX_BULK:
        raise ValueError(f"chunk_size must be between 1 and {MAX_BULK}, not {size}")
    return size


class JobManager(Manager):
    """``client.jobs``: create, list, change and delete jobs, in bulk where it matters."""

    path = "/jobs"

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
        parents: Sequence[int | Job] | None = None,
        resources: Resources | dict[str, Any] | None = None,
        environment: dict[str, str] | None = None,
        workdir: str | None = None,
        retry_limit: int | None = None,
        transfers: Sequence[TransferItemCreate | dict[str, Any]] | None = None,
        serialized_args: str | None = None,
        data: dict[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> Job:
        """Create one job. ``parents`` may be ids or Job objects (HyperQueue-style deps).

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
            parents=[p.id if isinstance(p, Job) else p for p in parents] if parents else None,
            resources=resources,
            environment=environment,
            workdir=workdir,
            retry_limit=retry_limit,
            transfers=list(transfers) if transfers is not None else None,
            serialized_args=serialized_args,
            data=data,
        )
        return self._create_chunk([body])[0]

    def batch(self) -> JobBatch:
        """A builder for many jobs with dependencies, sent in one request by ``submit()``."""
        return JobBatch(self)

    # ---- read

    def get(self, id: int) -> Job:
        return self._get_one(Job, f"{self.path}/{id}")

    @_filter_keywords
    def filter(
        self, *, ordering: str | None = None, limit: int | None = None, **filters: Unpack[JobFilterKwargs]
    ) -> list[Job]:
        """Every matching job (following pages), at most ``limit``.

        ``id`` and ``state`` take one value or several (any matches); ``tags`` must all
        match; ``ordering`` is one of id, -id, updated_at, -updated_at, created_at,
        -created_at, state.
        """
        return self._follow(Job, {**_filter_params(filters), "ordering": ordering or "id"}, limit)

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

    def wait(
        self,
        ids: Iterable[int | Job],
        *,
        states: Iterable[JobState | str] = FINAL,
        timeout: float | None = None,
        poll_sec: float = 1.0,
        raise_on_failure: bool = False,
    ) -> list[Job]:
        """Block until every job is in one of ``states`` (default: a final state).

        Returns the jobs in the order given. On timeout raises WaitTimeout listing the
        jobs still pending and their states; an id that does not exist raises NotFound.
        With ``raise_on_failure`` a FAILED or KILLED job raises JobsFailed, which lists
        each failed job with the path of its output.
        """
        want = [j.id if isinstance(j, Job) else j for j in ids]
        targets = {JobState(s) for s in states}
        deadline = None if timeout is None else time.monotonic() + timeout
        done: dict[int, Job] = {}
        while True:
            pending = [i for i in want if i not in done]
            last: dict[int, Job] = {}
            for chunk in _chunks(pending, 1_000):
                for job in self.filter(id=chunk):
                    last[job.id] = job
                    if job.state in targets:
                        done[job.id] = job
            missing = [i for i in pending if i not in last]
            if missing:
                raise NotFound(404, f"jobs not found: {_some(missing)}")
            pending = [i for i in want if i not in done]
            if not pending:
                result = [done[i] for i in want]
                if raise_on_failure:
                    self._raise_failed(result)
                return result
            if deadline is not None and time.monotonic() >= deadline:
                shown = _some([f"{i}={last[i].state.value}" for i in pending])
                raise WaitTimeout(
                    f"{len(pending)} of {len(want)} jobs not in {sorted(s.value for s in targets)} after "
                    f"{timeout}s: {shown}",
                    {i: last[i].state.value for i in pending},
                )
            time.sleep(poll_sec)

    def _raise_failed(self, jobs: list[Job]) -> None:
        failed = [j for j in jobs if j.state in (JobState.FAILED, JobState.KILLED)]
        if not failed:
            return
        site_paths: dict[int, str] = {}
        for site_id in {j.site_id for j in failed}:
            resp = self._http.request("GET", f"/sites/{site_id}")
            site_paths[site_id] = _parse(Site, resp.content).path
        outputs = {j.id: f"{site_paths[j.site_id]}/data/{j.workdir}/{JOB_OUTPUT}" for j in failed}
        shown = _some([f"{j.id} {j.state.value} ({outputs[j.id]})" for j in failed])
        raise JobsFailed(f"{len(failed)} of {len(jobs)} jobs failed: {shown}", failed, outputs)


def _some(items: Sequence[Any], n: int = 20) -> str:
    more = f" and {len(items) - n} more" if len(items) > n else ""
    return ", ".join(str(i) for i in items[:n]) + more
