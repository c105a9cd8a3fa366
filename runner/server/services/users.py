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


def register(db: Database, settings: AuthSettings, body: UserCreate, address: str | None) -> dict[str, Any]:
    key = body.username.casefold()
    with db.read() as conn:
        if name_taken(conn, key):
            raise Conflict(f"username {body.username!r} is taken (names are compared without case)")
    problem = passwords.policy_problem(body.password, body.username, settings.password_min_length)
    if problem:
        raise Invalid.at(["body", "password"], f"password refused: {problem}")
    # hashed outside the write transaction: it is 0.2 s of CPU, and on SQLite a write
    # transaction holds the write lock, which every launcher's report waits for
    password_hash = passwords.hash_password(body.password, settings.password_hash)
    with db.write() as conn:
        if name_taken(conn, key):  # registered by another request meanwhile
            raise Conflict(f"username {body.username!r} is taken (names are compared without case)")
        user_id = conn.execute(
            t.users.insert().values(
                username=body.username,
                name_key=key,
                password_hash=password_hash,
                role=role_for(settings, key),
                created_at=utcnow(),
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


#: what a login reads of the account, before and after the password is checked
_LOGIN_COLUMNS = (t.users.c.id, t.users.c.password_hash, t.users.c.disabled_at, t.users.c.role)


def verify_password_login(
    db: Database, settings: AuthSettings, username: str, password: str, address: str | None
) -> int:
    """The id of the account a name and password open; records a failure and raises otherwise.

    The failure is committed before the error is raised: it counts for the rate limit.
    The password is checked between two transactions, not inside one: argon2 is 0.2 s of
    CPU, and on SQLite a write transaction holds the write lock that every launcher's
    report waits for (a login, or a stream of wrong passwords, would stall them all). So
    attempts that arrive together are all checked against the count before any of them is
    recorded: the limit can be passed by as many attempts as are in flight at once.
    """
    key = username.casefold()
    error: ServiceError | None = None
    cost = settings.password_hash
    with db.read() as conn:
        now = utcnow()
        login_limit.check(conn, settings, name_key=key, address=address, now=now)
        row = conn.execute(select(*_LOGIN_COLUMNS).where(t.users.c.name_key == key)).first()
    ok = passwords.verify_password(row.password_hash if row else None, password, cost)
    rehashed = None
    verified = row.password_hash if row is not None and ok else None
    if verified is not None and passwords.needs_rehash(verified, cost):
        rehashed = passwords.hash_password(password, cost)  # the server's cost changed
    with db.write() as conn:
        if row is not None and ok:  # as it is now: disabled meanwhile?
            row = conn.execute(select(*_LOGIN_COLUMNS).where(t.users.c.id == row.id)).first()
        if row is None or not ok:
            audit.record(
                conn, "login.failed", user_id=row.id if row else None, name_key=key, address=address, at=now
            )
            error = Unauthorized("wrong username or password")
        elif row.disabled_at is not None:
            audit.record(conn, "login.refused", user_id=row.id, name_key=key, address=address, why="disabled")
            error = Unauthorized("account disabled by an administrator")
        else:
            changes: dict[str, Any] = {}
            role = role_for(settings, key, row.role)
            if role != row.role:
                changes["role"] = role
            if rehashed is not None and row.password_hash == verified:
                changes["password_hash"] = rehashed
            if changes:
                conn.execute(t.users.update().where(t.users.c.id == row.id).values(**changes))
            return int(row.id)
    raise error


def me(conn: Connection, user_id: int) -> dict[str, Any]:
    row = conn.execute(select(*USER_COLUMNS).where(t.users.c.id == user_id)).first()
    if row is None:
        raise NotFound(f"user {user_id} not found")
    return as_user(row)
