"""DAG prototypes (``/dags``) and their runs (``/dag-runs``): see services/dags.py."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query
from starlette.responses import Response

from runner import models
from runner.server.errors import json_response
from runner.server.routes.body import json_body, openapi_body
from runner.server.routes.deps import DEFAULT, Db, Limit, Offset, Who
from runner.server.services import dags

router = APIRouter(prefix="/dags", tags=["dags"])
runs_router = APIRouter(prefix="/dag-runs", tags=["dags"])

RunBody = Annotated[models.DagRunCreate, Depends(json_body(models.DagRunCreate))]


@router.post(
    "",
    status_code=201,
    response_model=models.Dag,
    responses={200: {"description": "unchanged: the latest version is the same DAG"}},
)
def define(body: models.DagCreate, who: Who, db: Db) -> Response:
    with db.write() as conn:
        dag, added = dags.define(conn, who, body)
    return json_response(dag, 201 if added else 200)


@router.get("", response_model=models.Page[models.Dag])
def list_dags(
    who: Who,
    db: Db,
    name: str | None = None,
    site_id: models.Id32 | None = None,
    all_versions: Annotated[
        bool, Query(description="every version, not only the latest of each name")
    ] = False,
    limit: Limit = DEFAULT,
    offset: Offset = 0,
) -> Response:
    with db.read() as conn:
        return json_response(
            dags.filter(
                conn, who, name=name, site_id=site_id, all_versions=all_versions, limit=limit, offset=offset
            )
        )


@router.get("/{dag_id}", response_model=models.Dag)
def get(dag_id: models.Id32, who: Who, db: Db) -> Response:
    with db.read() as conn:
        return json_response(dags.get(conn, who, dag_id))


@router.delete("/{dag_id}", status_code=204)
def delete(dag_id: models.Id32, who: Who, db: Db) -> Response:
    with db.write() as conn:
        dags.delete(conn, who, dag_id)
    return Response(status_code=204)


@router.post(
    "/{dag_id}/runs",
    status_code=201,
    response_model=models.DagRun,
    openapi_extra=openapi_body(
        models.DagRunCreate, "the instances to create (all their jobs in one transaction)"
    ),
)
def run(dag_id: models.Id32, body: RunBody, who: Who, db: Db) -> Response:
    with db.write() as conn:
        return json_response(dags.run(conn, db, who, dag_id, body), 201)


@runs_router.get("", response_model=models.Page[models.DagRun])
def list_runs(
    who: Who,
    db: Db,
    dag_id: models.Id32 | None = None,
    name: str | None = None,
    limit: Limit = DEFAULT,
    offset: Offset = 0,
) -> Response:
    with db.read() as conn:
        return json_response(dags.runs(conn, who, dag_id=dag_id, name=name, limit=limit, offset=offset))


@runs_router.get("/{run_id}", response_model=models.DagRun)
def get_run(run_id: models.Id32, who: Who, db: Db) -> Response:
    with db.read() as conn:
        return json_response(dags.get_run(conn, who, run_id))


@runs_router.get("/{run_id}/status", response_model=models.DagRunStatus)
def status(
    run_id: models.Id32,
    who: Who,
    db: Db,
    detail: Annotated[bool, Query(description="list every instance")] = False,
    instance: Annotated[
        int | None, Query(ge=0, le=models.INT32_MAX, description="only this instance (listed)")
    ] = None,
) -> Response:
    with db.read() as conn:
        return json_response(dags.status(conn, who, run_id, detail=detail, instance=instance))


@runs_router.post("/{run_id}/kill", response_model=models.KillResult)
def kill(
    run_id: models.Id32,
    who: Who,
    db: Db,
    instance: Annotated[
        int | None, Query(ge=0, le=models.INT32_MAX, description="only this instance")
    ] = None,
) -> Response:
    with db.write() as conn:
        return json_response({"killed": dags.kill(conn, who, run_id, instance=instance)})
