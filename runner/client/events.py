"""``client.events``: the state history of jobs."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from runner.client._base import Manager
from runner.models import Event, Page
from runner.states import JobState


class EventManager(Manager):
    """``client.events``: the state history of jobs (one row per transition).

    ``job_id`` takes one id or several (any matches): the Events of a batch of jobs in
    one request, through the index on ``job_id``.
    """

    path = "/events"

    def filter(
        self,
        *,
        job_id: int | Sequence[int] | None = None,
        site_id: int | None = None,
        to_state: JobState | str | Sequence[JobState | str] | None = None,
        from_state: JobState | str | Sequence[JobState | str] | None = None,
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
        job_id: int | Sequence[int] | None = None,
        site_id: int | None = None,
        to_state: JobState | str | Sequence[JobState | str] | None = None,
        from_state: JobState | str | Sequence[JobState | str] | None = None,
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
