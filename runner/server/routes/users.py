from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from runner import models
from runner.server.errors import json_response
from runner.server.routes.deps import Db, Who
from runner.server.services import users

router = APIRouter(prefix="/users", tags=["users"])


@router.post("/register", status_code=201, response_model=models.User)
def register(body: models.UserCreate, db: Db) -> Response:
    with db.write() as conn:
        return json_response(users.register(conn, body), 201)


@router.post("/login", response_model=models.Token)
def login(body: models.UserCreate, db: Db, request: Request) -> Response:
    with db.read() as conn:
        return json_response(users.login(conn, body, request.app.state.tokens))


@router.get("/me", response_model=models.User)
def me(who: Who, db: Db) -> Response:
    with db.read() as conn:
        return json_response(users.me(conn, who.user_id))
