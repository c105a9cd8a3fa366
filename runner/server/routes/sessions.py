from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from starlette.responses import Response

from runner import models
from runner.server.errors import json_response
from runner.server.routes.body import json_body, openapi_body
from runner.server.routes.deps import DEFAULT, Db, Limit, Offset, UpSince, Who
from runner.server.services import reports, sessions

router = APIRouter(prefix="/sessions", tags=["sessions"])


@router.post("", status_code=201, response_model=models.Session)
def create(body: models.SessionCreate, who: Who, db: Db) -> Response:
    with db.write() as conn:
        return json_response(sessions.create(conn, who, body), 201)


@router.get("", response_model=models.Page[models.Session])
def list_sessions(
    who: Who, db: Db, site_id: models.Id32 | None = None, limit: Limit = DEFAULT, offset: Offset = 0
) -> Response:
    with db.read() as conn:
        return json_response(sessions.filter(conn, who, site_id=site_id, limit=limit, offset=offset))


@router.post("/{session_id}/heartbeat", response_model=models.Session)
def heartbeat(session_id: models.Id32, who: Who, db: Db, up: UpSince) -> Response:
    with db.write() as conn:
        return json_response(sessions.heartbeat(conn, who, session_id, up_since=up))


@router.post("/{session_id}/acquire", response_model=list[models.Job])
def acquire(session_id: models.Id32, body: models.AcquireSpec, who: Who, db: Db, up: UpSince) -> Response:
    with db.write() as conn:
        held = sessions.acquire(conn, db, who, session_id, body, up_since=up)
    return Response(held, media_type="application/json")


ReportsBody = Annotated[list[models.JobReport], Depends(json_body(list[models.JobReport]))]


@router.post(
    "/{session_id}/reports",
    response_model=models.ReportResult,
    openapi_extra=openapi_body(
        list[models.JobReport], "what the launcher saw, in order", max_items=models.MAX_BULK
    ),
)
def report(session_id: models.Id32, body: ReportsBody, who: Who, db: Db) -> Response:
    """Apply a launcher's reports about the jobs it runs; each is applied or answered
    as moot with the reason (a late report never counts twice: docs/launcher.md)."""
    with db.write() as conn:
        return json_response(reports.apply(conn, who, session_id, body))


@router.delete("/{session_id}", status_code=204)
def delete(session_id: models.Id32, who: Who, db: Db) -> Response:
    with db.write() as conn:
        sessions.delete_session(conn, who, session_id)
    return Response(status_code=204)
