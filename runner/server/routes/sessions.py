from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import Response

from runner import models
from runner.server.errors import json_response
from runner.server.routes.deps import DEFAULT, Db, Limit, Offset, Who
from runner.server.services import sessions

router = APIRouter(prefix="/sessions", tags=["sessions"])


@router.post("", status_code=201, response_model=models.Session)
def create(body: models.SessionCreate, who: Who, db: Db) -> Response:
    with db.write() as conn:
        return json_response(sessions.create(conn, who, body), 201)


@router.get("", response_model=models.Page[models.Session])
def list_sessions(
    who: Who, db: Db, site_id: int | None = None, limit: Limit = DEFAULT, offset: Offset = 0
) -> Response:
    with db.read() as conn:
        return json_response(sessions.filter(conn, who, site_id=site_id, limit=limit, offset=offset))


@router.post("/{session_id}/heartbeat", response_model=models.Session)
def heartbeat(session_id: int, who: Who, db: Db) -> Response:
    with db.write() as conn:
        return json_response(sessions.heartbeat(conn, who, session_id))


@router.post("/{session_id}/acquire", response_model=list[models.Job])
def acquire(session_id: int, body: models.AcquireSpec, who: Who, db: Db) -> Response:
    with db.write() as conn:
        held = sessions.acquire(conn, db, who, session_id, body)
    return Response(held, media_type="application/json")


@router.delete("/{session_id}", status_code=204)
def delete(session_id: int, who: Who, db: Db) -> Response:
    with db.write() as conn:
        sessions.delete_session(conn, who, session_id)
    return Response(status_code=204)
