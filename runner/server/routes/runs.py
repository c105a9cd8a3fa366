"""``/runs``: published test runs, benchmarks and pipeline runs (docs/results.md)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query
from starlette.responses import Response

from runner import models
from runner.server.errors import json_response
from runner.server.routes.body import json_body, openapi_body
from runner.server.routes.deps import DEFAULT, Db, Limit, Offset, Who
from runner.server.services import run_views, runs

router = APIRouter(prefix="/runs", tags=["runs"])

PublishBody = Annotated[models.RunPublish, Depends(json_body(models.RunPublish))]
RunPk = Annotated[int, Path(ge=1, le=2**31 - 1, description="the server's id of the run")]
After = Annotated[datetime | None, Query(description="runs that started at or after this time")]
Before = Annotated[datetime | None, Query(description="runs that started before this time")]
SiteId = Annotated[int | None, Query(ge=1, le=2**31 - 1)]
Location = Annotated[str | None, Query(max_length=256, description="the harness location")]


@router.post(
    "",
    status_code=201,
    response_model=models.Run,
    responses={200: {"description": "this run id was published before with the same document"}},
    openapi_extra=openapi_body(models.RunPublish, "the run: its document and where, on what and when it ran"),
)
def publish(body: PublishBody, who: Who, db: Db) -> Response:
    run, created = runs.publish(db, who, body)
    return json_response(run, 201 if created else 200)


@router.get("", response_model=models.Page[models.Run])
def list_runs(
    who: Who,
    db: Db,
    site_id: SiteId = None,
    location: Location = None,
    area: Annotated[str | None, Query(max_length=64, description="runs that covered this area")] = None,
    commit: Annotated[
        str | None, Query(max_length=64, description="the commit, or its first characters")
    ] = None,
    kind: models.RunKind | None = None,
    run_id: Annotated[str | None, Query(max_length=256)] = None,
    ok: bool | None = None,
    after: After = None,
    before: Before = None,
    ordering: Annotated[
        str | None, Query(description="started_at, published_at, id; prefix - to reverse")
    ] = None,
    limit: Limit = DEFAULT,
    offset: Offset = 0,
) -> Response:
    with db.read() as conn:
        return json_response(
            runs.filter(
                conn,
                who,
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
                limit=limit,
                offset=offset,
            )
        )


@router.get("/matrix", response_model=models.Matrix)
def matrix(
    who: Who,
    db: Db,
    site_id: SiteId = None,
    location: Location = None,
    after: After = None,
    before: Before = None,
) -> Response:
    """Site (and location) x area, per night: the last run that covered each area that night.
    Default: the last 14 nights; at most 92."""
    with db.read() as conn:
        return json_response(
            run_views.matrix(conn, who, site_id=site_id, location=location, after=after, before=before)
        )


@router.get("/scenarios", response_model=list[models.ScenarioSummary])
def scenarios(
    who: Who,
    db: Db,
    site_id: SiteId = None,
    location: Location = None,
    after: After = None,
    before: Before = None,
) -> Response:
    """The benchmark scenarios published, by key (command, name, parameters), newest first."""
    with db.read() as conn:
        return json_response(
            run_views.scenarios(conn, who, site_id=site_id, location=location, after=after, before=before)
        )


@router.get("/trends", response_model=models.Trend)
def trends(
    who: Who,
    db: Db,
    scenario: Annotated[
        str, Query(min_length=1, max_length=400, description="a scenario key (/runs/scenarios)")
    ],
    figure: Annotated[
        list[str] | None, Query(description="figures to include (repeatable); default: all")
    ] = None,
    site_id: SiteId = None,
    location: Location = None,
    after: After = None,
    before: Before = None,
    limit: Annotated[int, Query(ge=1, le=run_views.MAX_TREND_RUNS, description="the last N runs")] = 100,
) -> Response:
    """A scenario's figures over its last ``limit`` runs, oldest first, with what each figure is
    (unit, better, aim)."""
    with db.read() as conn:
        return json_response(
            run_views.trend(
                conn,
                who,
                scenario=scenario,
                figures=figure,
                site_id=site_id,
                location=location,
                after=after,
                before=before,
                limit=limit,
            )
        )


@router.get("/{run_pk}", response_model=models.Run)
def get(run_pk: RunPk, who: Who, db: Db) -> Response:
    with db.read() as conn:
        return json_response(runs.get(conn, who, run_pk))


@router.get(
    "/{run_pk}/document",
    responses={200: {"description": "the document as published", "content": {"application/json": {}}}},
)
def document(run_pk: RunPk, who: Who, db: Db) -> Response:
    """The report.json, bench.json or pipeline report as it was published."""
    with db.read() as conn:
        return Response(runs.document(conn, who, run_pk), media_type="application/json")


@router.delete("/{run_pk}", status_code=204)
def delete(run_pk: RunPk, who: Who, db: Db) -> Response:
    with db.write() as conn:
        runs.delete_run(conn, who, run_pk)
    return Response(status_code=204)
