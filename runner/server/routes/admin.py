"""``/admin``: accounts, for administrators (role ``admin`` with a full-scope credential)."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import Response

from runner import models
from runner.server.errors import json_response
from runner.server.routes.deps import DEFAULT, Address, Db, Limit, Offset, Who
from runner.server.services import admin

router = APIRouter(prefix="/admin", tags=["admin"])


@router.get("/users", response_model=models.Page[models.User])
def list_users(who: Who, db: Db, limit: Limit = DEFAULT, offset: Offset = 0) -> Response:
    with db.read() as conn:
        return json_response(admin.list_users(conn, who, limit=limit, offset=offset))


@router.patch("/users/{user_id}", response_model=models.User)
def update_user(
    user_id: models.Id32, body: models.UserAdminUpdate, who: Who, db: Db, address: Address
) -> Response:
    """Disable or enable an account (all its credentials, at their next request), or set its role."""
    with db.write() as conn:
        return json_response(admin.update_user(conn, who, user_id, body, address))
