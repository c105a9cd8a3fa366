"""Audit events: logins, token creation and revocation, device approvals, account changes.

Every account can list its own (``GET /auth/audit``, ``tolu audit ls``); failed
logins are recorded too, against the account they named, and the login rate limits
count them (``runner.server.services.login_limit``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select

from runner.server import tables as t
from runner.server.auth.principal import Principal
from runner.server.db import utcnow
from runner.server.services.common import count, plain

#: the actions recorded, for the API's documentation and the CLI's filter.
ACTIONS = (
    "login.succeeded",
    "login.failed",
    "login.refused",
    "token.created",
    "token.revoked",
    "login.revoked",
    "device.approved",
    "device.denied",
    "refresh.reused",
    "account.created",
    "account.renamed",
    "account.disabled",
    "account.enabled",
    "account.role",
)


def record(
    conn: Connection,
    action: str,
    *,
    user_id: int | None,
    name_key: str | None = None,
    address: str | None = None,
    at: datetime | None = None,
    **detail: Any,
) -> None:
    assert action in ACTIONS, action
    conn.execute(
        t.audit_events.insert().values(
            user_id=user_id,
            action=action,
            name_key=name_key,
            address=address[:64] if address else None,
            detail=detail,
            at=at or utcnow(),
        )
    )


def filter(
    conn: Connection, who: Principal, *, user_id: int | None, action: str | None, limit: int, offset: int
) -> dict[str, Any]:
    """Newest first. Everyone sees their own; an admin may name another account."""
    who.require_account("read the account's audit events")
    a = t.audit_events
    if user_id is not None and user_id != who.user_id:
        who.require_admin()
    where = [a.c.user_id == (user_id if user_id is not None else who.user_id)]
    if action:
        where.append(a.c.action == action)
    stmt = (
        select(a.c.id, a.c.user_id, a.c.action, a.c.address, a.c.detail, a.c.at)
        .where(*where)
        .order_by(a.c.id.desc())
        .limit(limit)
        .offset(offset)
    )
    rows = [plain(r) for r in conn.execute(stmt)]
    return {"count": count(conn, a, where), "results": rows}
