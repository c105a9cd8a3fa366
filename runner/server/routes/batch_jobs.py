from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Query
from starlette.responses import Response

from runner import models
from runner.server.errors import json_response
from runner.server.routes.deps import DEFAULT, Db, Limit, Offset, Who
from runner.server.services import batch_jobs
from runner.states import BatchJobState

router = APIRouter(prefix="/batch-jobs", tags=["batch jobs"])


#: at most MAX_BULK (a 422 beyond it, and ``maxItems`` in /openapi.json)
Updates = Annotated[list[models.BatchJobUpdate], Body(max_length=models.MAX_BULK)]


@router.post("", status_code=201, response_model=models.BatchJob)
def create(body: models.BatchJobCreate, who: Who, db: Db) -> Response:
    with db.write() as conn:
        return json_response(batch_jobs.create(conn, who, body), 201)


@router.get("", response_model=models.Page[models.BatchJob])
def list_batch_jobs(
    who: Who,
    db: Db,
    site_id: models.Id32 | None = None,
    state: Annotated[list[BatchJobState] | None, Query()] = None,
    limit: Limit = DEFAULT,
    offset: Offset = 0,
) -> Response:
    with db.read() as conn:
        return json_response(
            batch_jobs.filter(conn, who, site_id=site_id, state=state, limit=limit, offset=offset)
        )


@router.patch("", response_model=list[models.BatchJob])
def bulk_update(body: Updates, who: Who, db: Db) -> Response:
    with db.write() as conn:
        return json_response(batch_jobs.bulk_update(conn, who, body))


@router.get("/{batch_job_id}", response_model=models.BatchJob)
def get(batch_job_id: models.Id32, who: Who, db: Db) -> Response:
    with db.read() as conn:
        return json_response(batch_jobs.get(conn, who, batch_job_id))


@router.patch("/{batch_job_id}", response_model=models.BatchJob)
def update(batch_job_id: models.Id32, body: models.BatchJobUpdate, who: Who, db: Db) -> Response:
    body = body.model_copy(update={"id": batch_job_id})
    with db.write() as conn:
        return json_response(batch_jobs.bulk_update(conn, who, [body], single=True)[0])


@router.delete("/{batch_job_id}", response_model=models.BatchJob)
def delete(batch_job_id: models.Id32, who: Who, db: Db) -> Response:
    with db.write() as conn:
        return json_response(batch_jobs.request_deletion(conn, who, batch_job_id))
