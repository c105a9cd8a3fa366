from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import Response

from runner import models
from runner.server.errors import json_response
from runner.server.routes.deps import DEFAULT, Db, Limit, Offset, Who
from runner.server.services import apps

router = APIRouter(prefix="/apps", tags=["apps"])


@router.post("", status_code=201, response_model=models.App)
def create(body: models.AppCreate, who: Who, db: Db) -> Response:
    with db.write() as conn:
        return json_response(apps.create(conn, who, body), 201)


@router.get("", response_model=models.Page[models.App])
def list_apps(
    who: Who,
    db: Db,
    site_id: models.Id32 | None = None,
    name: models.NameQuery | None = None,
    limit: Limit = DEFAULT,
    offset: Offset = 0,
) -> Response:
    with db.read() as conn:
        return json_response(apps.filter(conn, who, site_id=site_id, name=name, limit=limit, offset=offset))


@router.get("/{app_id}", response_model=models.App)
def get(app_id: models.Id32, who: Who, db: Db) -> Response:
    with db.read() as conn:
        return json_response(apps.get(conn, who, app_id))


@router.patch("/{app_id}", response_model=models.App)
def update(app_id: models.Id32, body: models.AppUpdate, who: Who, db: Db) -> Response:
    with db.write() as conn:
        return json_response(apps.update(conn, who, app_id, body))


@router.delete("/{app_id}", status_code=204)
def delete(app_id: models.Id32, who: Who, db: Db) -> Response:
    with db.write() as conn:
        apps.delete(conn, who, app_id)
    return Response(status_code=204)
