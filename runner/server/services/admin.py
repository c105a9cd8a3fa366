"""What an administrator does with accounts: list them, disable or enable them, set roles.

Disabling an account refuses its every credential at the next request (the grant
check reads the account); enabling it again lets its unexpired logins and tokens work.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, select

from runner.models import UserAdminUpdate
from runner.server import tables as t
from runner.server.auth.principal import Principal
from runner.server.db import utcnow
from runner.server.errors import Conflict, NotFound
from runner.server.services import audit
from runner.server.services.common import count
from runner.server.services.users import USER_COLUMNS, as_user


def list_users(conn: Connection, who: Principal, *, limit: int, offset: int) -> dict[str, Any]:
    who.require_admin()
    stmt = select(*USER_COLUMNS).order_by(t.users.c.id).limit(limit).offset(offset)
    return {"count": count(conn, t.users, []), "results": [as_user(r) for r in conn.execute(stmt)]}


def update_user(
    conn: Connection, who: Principal, user_id: int, body: UserAdminUpdate, address: str | None
) -> dict[str, Any]:
    who.require_admin()
    u = t.users
    row = conn.execute(select(*USER_COLUMNS).where(u.c.id == user_id)).first()
    if row is None:
        raise NotFound(f"user {user_id} not found")
    if user_id == who.user_id and (body.disabled or body.role == "user"):
        raise Conflict("an administrator cannot disable or demote their own account")
    if body.disabled is not None and body.disabled != (row.disabled_at is not None):
        conn.execute(
            u.update().where(u.c.id == user_id).values(disabled_at=utcnow() if body.disabled else None)
        )
        action = "account.disabled" if body.disabled else "account.enabled"
        audit.record(conn, action, user_id=user_id, address=address, by=who.username)
    if body.role is not None and body.role != row.role:
        conn.execute(u.update().where(u.c.id == user_id).values(role=body.role))
        audit.record(conn, "account.role", user_id=user_id, address=address, by=who.username, role=body.role)
    return as_user(conn.execute(select(*USER_COLUMNS).where(u.c.id == user_id)).one())
