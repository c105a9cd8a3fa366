from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query
from starlette.responses import Response

from runner import models
from runner.server.errors import json_response
from runner.server.routes.body import json_body, openapi_body
from runner.server.routes.deps import DEFAULT, Db, Limit, Offset, Who
from runner.server.services import idempotency, job_create, jobs

router = APIRouter(prefix="/jobs", tags=["jobs"])


#: the job filters of the query string, read by FastAPI as one model (runner.models.JobFilter).
Filter = Annotated[models.JobFilter, Query()]
Ordering = Annotated[str | None, Query(description="id, updated_at, created_at, state; prefix - to reverse")]


CreateBody = Annotated[list[models.JobCreate], Depends(json_body(list[models.JobCreate]))]
UpdateBody = Annotated[list[models.JobUpdate], Depends(json_body(list[models.JobUpdate]))]


@router.post(
    "",
    status_code=201,
    response_model=list[models.Job],
    openapi_extra=openapi_body(
        list[models.JobCreate], "jobs to create, a DAG by key", max_items=models.MAX_BULK
    ),
)
def bulk_create(body: CreateBody, who: Who, db: Db) -> Response:
    try:
        with db.write() as conn:
            answer = json_response(job_create.bulk_create(conn, db, who, body), 201)
    except idempotency.RACED:
        if not any(it.idempotency_key for it in body):
            raise
        # A concurrent request with some of the same idempotency keys committed first (the
        # unique index refused ours, and nothing of ours was written): answer its jobs,
        # create the rest.
        with db.write() as conn:
            answer = json_response(job_create.bulk_create(conn, db, who, body), 201)
    db.after_bulk_insert()
    return answer


@router.get("", response_model=models.Page[models.Job])
def list_jobs(
    who: Who, db: Db, ordering: Ordering = None, limit: Limit = DEFAULT, offset: Offset = 0, *, flt: Filter
) -> Response:
    with db.read() as conn:
        return json_response(jobs.filter(conn, who, flt, ordering=ordering, limit=limit, offset=offset))


@router.get("/counts", response_model=list[models.StateCount])
def counts(who: Who, db: Db, flt: Filter) -> Response:
    with db.read() as conn:
        return json_response(jobs.counts(conn, who, flt))


@router.patch(
    "",
    response_model=list[models.Job],
    responses={204: {"description": "with `returning=false`: updated, nothing sent back"}},
    openapi_extra=openapi_body(
        list[models.JobUpdate], "updates, each with the job id", max_items=models.MAX_BULK
    ),
)
def bulk_update(
    body: UpdateBody,
    who: Who,
    db: Db,
    returning: Annotated[bool, Query(description="false: answer 204 instead of the jobs")] = True,
) -> Response:
    with db.write() as conn:
        updated = jobs.bulk_update(conn, who, body, returning=returning)
        return json_response(updated) if returning else Response(status_code=204)


@router.delete("", response_model=models.DeleteResult)
def delete_where(who: Who, db: Db, flt: Filter) -> Response:
    with db.write() as conn:
        return json_response({"deleted": jobs.delete_where(conn, who, flt)})


@router.get("/{job_id}", response_model=models.Job)
def get(job_id: models.Id, who: Who, db: Db) -> Response:
    with db.read() as conn:
        return json_response(jobs.get(conn, who, job_id))


@router.patch("/{job_id}", response_model=models.Job)
def update(job_id: models.Id, body: models.JobUpdate, who: Who, db: Db) -> Response:
    body = body.model_copy(update={"id": job_id})
    with db.write() as conn:
        return json_response(jobs.bulk_update(conn, who, [body], loc_prefix=False)[0])


@router.delete("/{job_id}", status_code=204)
def delete(job_id: models.Id, who: Who, db: Db) -> Response:
    with db.write() as conn:
        jobs.delete_one(conn, who, job_id)
    return Response(status_code=204)
