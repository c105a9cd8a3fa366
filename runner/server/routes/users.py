from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import Response

from runner import models
from runner.server.errors import json_response
from runner.server.routes.deps import Address, Auth, Db, Who
from runner.server.services import grants, users

router = APIRouter(prefix="/users", tags=["users"])


def issuer(auth: Auth) -> grants.Issuer:
    return grants.Issuer(auth.tokens, auth.settings)


@router.post("/register", status_code=201, response_model=models.User)
def register(body: models.UserCreate, db: Db, auth: Auth, address: Address) -> Response:
    """Create an account (the password policy applies; names are compared without case)."""
    return json_response(users.register(db, auth.settings, body, address), 201)


@router.post(
    "/login", response_model=models.Token, responses={429: {"description": "too many failed logins"}}
)
def login(body: models.LoginRequest, db: Db, auth: Auth, address: Address) -> Response:
    """Password login: an access token and a refresh token (renew at POST /auth/token)."""
    return json_response(users.login(db, issuer(auth), body, address))


@router.get("/me", response_model=models.User)
def me(who: Who, db: Db) -> Response:
    with db.read() as conn:
        return json_response(users.me(conn, who.user_id))
