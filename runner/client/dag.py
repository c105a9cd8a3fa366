"""``client.jobs.batch()``: build a DAG of jobs, then create all of it in one request."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from runner.client._base import _changes
from runner.client.handles import JobHandle
from runner.models import App, Job, Resources, Tags, TransferItemCreate

if TYPE_CHECKING:
    from runner.client.jobs import JobManager


class JobRef(str):
    """A job added to a JobBatch; pass it in ``parents`` of later jobs of the batch."""

    __slots__ = ()


class JobBatch:
    """Build a DAG of jobs, then create all of it in one request (HyperQueue-style).

    ::

        batch = client.jobs.batch()
        prep = batch.add(prep_app, parameters={"n": 10})
        sims = [batch.add(sim_app, parents=[prep], parameters={"i": i}) for i in range(100)]
        batch.add(reduce_app, parents=sims)
        jobs = batch.submit()            # list[Job] in the order added
        batch[prep].state                # the created Job of a ref
    """

    def __init__(self, manager: JobManager) -> None:
        self._manager = manager
        self._bodies: list[dict[str, Any]] = []
        self._created: dict[str, Job] = {}

    def __len__(self) -> int:
        return len(self._bodies)

    def add(
        self,
        app: App | int,
        *,
        parameters: dict[str, Any] | None = None,
        tags: Tags | None = None,
        parents: Sequence[JobRef | Job | JobHandle | int] | None = None,
        resources: Resources | dict[str, Any] | None = None,
        environment: dict[str, str] | None = None,
        workdir: str | None = None,
        retry_limit: int | None = None,
        transfers: Sequence[TransferItemCreate | dict[str, Any]] | None = None,
        serialized_args: str | None = None,
        data: dict[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> JobRef:
        """Add one job; returns a ref usable as a parent of later jobs.

        ``idempotency_key`` names the job for good (see ``jobs.create``): a batch built again
        with the same keys and submitted creates only the jobs that do not exist yet.
        """
        if self._created:
            raise ValueError("this batch was already submitted; start a new one with client.jobs.batch()")
        ref = JobRef(f"job-{len(self._bodies)}")
        self._bodies.append(
            _changes(
                app_id=app.id if isinstance(app, App) else app,
                key=str(ref),
                idempotency_key=idempotency_key,
                parameters=parameters,
                tags=tags,
                parents=[_parent(p) for p in parents] if parents else None,
                resources=resources,
                environment=environment,
                workdir=workdir,
                retry_limit=retry_limit,
                transfers=list(transfers) if transfers is not None else None,
                serialized_args=serialized_args,
                data=data,
            )
        )
        return ref

    def submit(self) -> list[Job]:
        """Create every job added (one request up to MAX_BULK); returns them in order."""
        if self._created:
            raise ValueError("this batch was already submitted")
        made = self._manager.bulk_create(self._bodies)
        self._created = {body["key"]: job for body, job in zip(self._bodies, made, strict=True)}
        return made

    def __getitem__(self, ref: JobRef) -> Job:
        """The created job of ``ref`` (after ``submit()``)."""
        if not self._created:
            raise ValueError("submit() the batch first")
        return self._created[str(ref)]


def _parent(p: JobRef | Job | JobHandle | int) -> int | str:
    if isinstance(p, Job | JobHandle):
        return p.id
    if isinstance(p, JobRef):
        return str(p)
    if isinstance(p, int):
        return p
    raise TypeError(f"a parent must be a JobRef from this batch, a Job, a JobHandle or a job id, not {p!r}")
