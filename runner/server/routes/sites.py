from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import Response

from runner import models
from runner.server.errors import json_response
from runner.server.routes.deps import DEFAULT, Db, Limit, Offset, Who
from runner.server.services import sites

router = APIRouter(prefix="/sites", tags=["sites"])


@router.post("", status_code=201, response_model=models.Site)
def create(body: models.SiteCreate, who: Who, db: Db) -> Response:
    with db.write() as conn:
        return json_response(sites.create(conn, who, body), 201)


@router.get("", response_model=models.Page[models.Site])
def list_sites(
    who: Who, db: Db, name: models.NameQuery | None = None, limit: Limit = DEFAULT, offset: Offset = 0
) -> Response:
    with db.read() as conn:
        return json_response(sites.filter(conn, who, name=name, limit=limit, offset=offset))


@router.get("/{site_id}", response_model=models.Site)
def get(site_id: models.Id32, who: Who, db: Db) -> Response:
    with db.read() as conn:
        return json_response(sites.get(conn, who, site_id))


@router.patch("/{site_id}", response_model=models.Site)
def update(site_id: models.Id32, body: models.SiteUpdate, who: Who, db: Db) -> Response:
    with db.write() as conn:
        return json_response(sites.update(conn, who, site_id, body))


@router.delete("/{site_id}", status_code=204)
def delete(site_id: models.Id32, who: Who, db: Db) -> Response:
    with db.write() as conn:
        sites.delete(conn, who, site_id)
    return Response(status_code=204)
