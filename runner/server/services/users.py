"""Accounts: registration, password login, who am I.

Usernames are compared case-folded (``users.name_key``): ``ALICE`` logs in as
``alice`` and cannot be registered beside her. A password login goes through the
failed-login limits first (``login_limit``), and every attempt is an audit event.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, select

from runner.models import LoginRequest, UserCreate
from runner.server import tables as t
from runner.server.auth import passwords
from runner.server.auth.settings import AuthSettings
from runner.server.db import Database, utcnow
from runner.server.errors import Conflict, Invalid, NotFound, ServiceError, Unauthorized
from runner.server.services import audit, grants, login_limit

USER_COLUMNS = (
    t.users.c.id,
    t.users.c.username,
    t.users.c.created_at,
    t.users.c.role,
    t.users.c.email,
    t.users.c.disabled_at,
)


def as_user(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "username": row.username,
        "created_at": row.created_at,
        "role": row.role,
        "email": row.email,
        "disabled": row.disabled_at is not None,
    }


def role_for(settings: AuthSettings, name_key: str, current: str = "user") -> str:
    return "admin" if name_key in settings.admin_users else current


def name_taken(conn: Connection, name_key: str) -> bool:
    return conn.execute(select(t.users.c.id).where(t.users.c.name_key == name_key)).first() is not None


def register(
    conn: Connection, settings: AuthSettings, body: UserCreate, address: str | None
) -> dict[str, Any]:
    key = body.username.casefold()
    if name_taken(conn, key):
        raise Conflict(f"username {body.username!r} is taken (names are compared without case)")
    problem = passwords.policy_problem(body.password, body.username, settings.password_min_length)
    if problem:
        raise Invalid.at(["body", "password"], f"password refused: {problem}")
    now = utcnow()
    user_id = conn.execute(
        t.users.insert().values(
            username=body.username,
            name_key=key,
            password_hash=passwords.hash_password(body.password),
            role=role_for(settings, key),
            created_at=now,
        )
    ).inserted_primary_key[0]  # type: ignore[index]
    audit.record(conn, "account.created", user_id=user_id, name_key=key, address=address, via="password")
    return me(conn, user_id)


def login(db: Database, issuer: grants.Issuer, body: LoginRequest, address: str | None) -> dict[str, Any]:
    """A password login: rate limits, password, audit event, a new login grant."""
    user_id = verify_password_login(db, issuer.settings, body.username, body.password, address)
    with db.write() as conn:
        row = conn.execute(select(t.users.c.username).where(t.users.c.id == user_id)).one()
        return grants.open_login(
            conn,
            issuer,
            user_id=user_id,
            username=row.username,
            via="password",
            name=body.client_name,
            address=address,
        )


def verify_password_login(
    db: Database, settings: AuthSettings, username: str, password: str, address: str | None
) -> int:
    """The id of the account a name and password open; records a failure and raises otherwise.

    The failure is committed before the error is raised: it counts for the rate limit.
    """
    key = username.casefold()
    error: ServiceError | None = None
    with db.write() as conn:
        now = utcnow()
        login_limit.check(conn, settings, name_key=key, address=address, now=now)
        row = conn.execute(
            select(t.users.c.id, t.users.c.password_hash, t.users.c.disabled_at, t.users.c.role).where(
                t.users.c.name_key == key
            )
        ).first()
        ok = passwords.verify_password(row.password_hash if row else None, password)
        if row is None or not ok:
            audit.record(
                conn, "login.failed", user_id=row.id if row else None, name_key=key, address=address, at=now
            )
            error = Unauthorized("wrong username or password")
        elif row.disabled_at is not None:
            audit.record(conn, "login.refused", user_id=row.id, name_key=key, address=address, why="disabled")
            error = Unauthorized("account disabled by an administrator")
        else:
            role = role_for(settings, key, row.role)
            if role != row.role:
                conn.execute(t.users.update().where(t.users.c.id == row.id).values(role=role))
            return int(row.id)
    raise error


def me(conn: Connection, user_id: int) -> dict[str, Any]:
    row = conn.execute(select(*USER_COLUMNS).where(t.users.c.id == user_id)).first()
    if row is None:
        raise NotFound(f"user {user_id} not found")
    return as_user(row)
