"""``client.runs``: published test runs, benchmarks and pipeline runs (docs/results.md)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import orjson

from runner.client._base import Manager, _parse
from runner.models import Matrix, Page, Run, RunKind, RunPublish, ScenarioSummary, Trend


class RunManager(Manager):
    """``client.runs``: publish a run's document under a site; list, read, compare.

    >>> client.runs.filter(site_id=3, area="scheduler", after=datetime(2026, 11, 1))
    >>> client.runs.trend("throughput:serial:4f2a...", location="perlmutter", limit=10)
    """

    path = "/runs"

    def publish(
        self,
        *,
        site_id: int,
        kind: RunKind,
        run_id: str,
        location: str,
        machine: str,
        started_at: datetime,
        document: Mapping[str, Any],
        commit: str | None = None,
        load: Sequence[float] = (),
    ) -> Run:
        """Keep a run on the server. Publishing the same run id with the same document again
        answers the run kept the first time; with another document it is a ConflictError."""
        body = RunPublish(
            site_id=site_id,
            kind=kind,
            run_id=run_id,
            location=location,
            machine=machine,
            commit=commit,
            load=list(load),
            started_at=started_at,
            document=dict(document),
        )
        result: Run = self._send("POST", Run, self.path, raw=body.model_dump_json().encode())
        return result

    def get(self, id: int) -> Run:
        return self._get_one(Run, f"{self.path}/{id}")

    def document(self, id: int) -> dict[str, Any]:
        """The document as it was published."""
        loaded: dict[str, Any] = orjson.loads(self._http.request("GET", f"{self.path}/{id}/document").content)
        return loaded

    def filter(
        self,
        *,
        site_id: int | None = None,
        location: str | None = None,
        area: str | None = None,
        commit: str | None = None,
        kind: RunKind | None = None,
        run_id: str | None = None,
        ok: bool | None = None,
        after: datetime | None = None,
        before: datetime | None = None,
        ordering: str | None = None,
        limit: int | None = None,
    ) -> list[Run]:
        """Runs, newest first (``ordering``: started_at, published_at, id; - to reverse)."""
        params = dict(
            site_id=site_id,
            location=location,
            area=area,
            commit=commit,
            kind=kind,
            run_id=run_id,
            ok=ok,
            after=after,
            before=before,
            ordering=ordering,
        )
        return self._follow(Run, params, limit)

    def page(self, *, limit: int = 100, offset: int = 0, **filters: Any) -> Page[Run]:
        return self._page(Run, {**filters, "limit": limit, "offset": offset})

    def delete(self, id: int) -> None:
        self._delete(f"{self.path}/{id}")

    def matrix(
        self,
        *,
        site_id: int | None = None,
        location: str | None = None,
        after: datetime | None = None,
        before: datetime | None = None,
    ) -> Matrix:
        """Site and location x area, per night (default: the last 14)."""
        params = dict(site_id=site_id, location=location, after=after, before=before)
        resp = self._http.request("GET", f"{self.path}/matrix", params=params)
        result: Matrix = _parse(Matrix, resp.content)
        return result

    def scenarios(self, *, site_id: int | None = None, location: str | None = None) -> list[ScenarioSummary]:
        resp = self._http.request(
            "GET", f"{self.path}/scenarios", params=dict(site_id=site_id, location=location)
        )
        result: list[ScenarioSummary] = _parse(list[ScenarioSummary], resp.content)
        return result

    def trend(
        self,
        scenario: str,
        *,
        figures: Sequence[str] | None = None,
        site_id: int | None = None,
        location: str | None = None,
        after: datetime | None = None,
        before: datetime | None = None,
        limit: int = 100,
    ) -> Trend:
        """The last ``limit`` runs of a scenario (its key), oldest first, with their figures."""
        params = dict(
            scenario=scenario,
            figure=list(figures) if figures else None,
            site_id=site_id,
            location=location,
            after=after,
            before=before,
            limit=limit,
        )
        resp = self._http.request("GET", f"{self.path}/trends", params=params)
        result: Trend = _parse(Trend, resp.content)
        return result
