"""Users: registration, login, who am I."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, select

from runner.models import UserCreate
from runner.server import auth
from runner.server import tables as t
from runner.server.db import utcnow
from runner.server.errors import Conflict, NotFound, Unauthorized


def register(conn: Connection, body: UserCreate) -> dict[str, Any]:
    taken = conn.execute(select(t.users.c.id).where(t.users.c.username == body.username)).first()
    if taken is not None:
        raise Conflict(f"username {body.username!r} is taken")
    now = utcnow()
    user_id = conn.execute(
        t.users.insert().values(
            username=body.username, password_hash=auth.hash_password(body.password), created_at=now
        )
    ).inserted_primary_key[0]  # type: ignore[index]
    return {"id": user_id, "username": body.username, "created_at": now}


def login(conn: Connection, body: UserCreate, tokens: auth.TokenIssuer) -> dict[str, Any]:
    row = conn.execute(
        select(t.users.c.id, t.users.c.password_hash).where(t.users.c.username == body.username)
    ).first()
    if not auth.verify_password(row.password_hash if row else None, body.password) or row is None:
        raise Unauthorized("wrong username or password")
    token, expires = tokens.issue(row.id, body.username)
    return {
        "access_token": token,
        "token_type": "bearer",
        "expires_at": expires,
        "username": body.username,
    }


def me(conn: Connection, user_id: int) -> dict[str, Any]:
    row = conn.execute(
        select(t.users.c.id, t.users.c.username, t.users.c.created_at).where(t.users.c.id == user_id)
    ).first()
    if row is None:
        raise NotFound(f"user {user_id} not found")
    return {"id": row.id, "username": row.username, "created_at": row.created_at}
