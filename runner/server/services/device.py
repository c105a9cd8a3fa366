"""Device-code login (RFC 8628), served by tolu.

A client with no browser (``tolu login --device`` on a login node) asks for a
device code and a short user code; a person who is logged in elsewhere approves
the user code (``tolu login approve CODE`` or the page at ``/device``); the client,
polling ``/auth/token`` every ``interval`` seconds, then receives a login of the
approving account. Polling faster answers ``slow_down`` and adds 5 seconds to the
interval (section 3.5); an expired, denied or used code is refused for good.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import Connection, select

from runner.server import tables as t
from runner.server.auth import opaque
from runner.server.auth.principal import Principal, Scope
from runner.server.db import utcnow
from runner.server.errors import Forbidden, NotFound, OAuthError
from runner.server.services import audit, grants

#: RFC 8628 section 3.5: each slow_down adds this to the polling interval.
SLOW_DOWN_STEP_SEC = 5.0
VERIFICATION_PATH = "/device"


def start(conn: Connection, issuer: grants.Issuer, *, client_name: str, base_url: str) -> dict[str, Any]:
    settings = issuer.settings
    now = utcnow()
    device_code = opaque.new_secret(opaque.DEVICE_CODE)
    for _ in range(5):  # a clash of user codes is unlikely (34 bits) but possible
        user_code = opaque.new_user_code()
        taken = conn.execute(
            select(t.device_codes.c.id).where(t.device_codes.c.user_code == user_code)
        ).first()
        if taken is None:
            break
    conn.execute(
        t.device_codes.insert().values(
            code_hash=opaque.digest(device_code),
            user_code=user_code,
            client_name=(client_name or "a device")[:128],
            created_at=now,
            expires_at=now + timedelta(seconds=settings.device_code_ttl_sec),
            interval_sec=settings.device_poll_interval_sec,
            state="pending",
        )
    )
    # Codes that expired a while ago are of no use to anyone.
    conn.execute(t.device_codes.delete().where(t.device_codes.c.expires_at < now - timedelta(days=1)))
    uri = base_url.rstrip("/") + VERIFICATION_PATH
    return {
        "device_code": device_code,
        "user_code": user_code,
        "verification_uri": uri,
        "verification_uri_complete": f"{uri}?user_code={user_code}",
        "expires_in": int(settings.device_code_ttl_sec),
        "interval": max(1, int(settings.device_poll_interval_sec)),
    }


def poll(
    conn: Connection, issuer: grants.Issuer, device_code: str, address: str | None
) -> dict[str, Any] | OAuthError:
    """The login once approved; otherwise the OAuth error to answer (returned, not raised, so
    the caller commits the polling time and interval before answering)."""
    d = t.device_codes
    now = utcnow()
    row = conn.execute(select(d).where(d.c.code_hash == opaque.digest(device_code))).first()
    if row is None:
        return OAuthError("invalid_grant", "unknown device code")
    if row.state == "used":
        return OAuthError("invalid_grant", "this device code was used already; start again")
    if row.expires_at <= now:
        return OAuthError("expired_token", "the code expired before it was approved; start again")
    if row.state == "denied":
        return OAuthError("access_denied", "the login was denied")
    if row.last_poll_at is not None and (now - row.last_poll_at).total_seconds() < row.interval_sec:
        interval = row.interval_sec + SLOW_DOWN_STEP_SEC
        conn.execute(d.update().where(d.c.id == row.id).values(last_poll_at=now, interval_sec=interval))
        return OAuthError("slow_down", f"polling too fast; wait {interval:.0f} s between requests")
    conn.execute(d.update().where(d.c.id == row.id).values(last_poll_at=now))
    if row.state == "pending":
        return OAuthError("authorization_pending", "waiting for someone to approve the code")
    conn.execute(d.update().where(d.c.id == row.id).values(state="used"))
    user = conn.execute(
        select(t.users.c.username, t.users.c.disabled_at).where(t.users.c.id == row.user_id)
    ).one()
    if user.disabled_at is not None:
        return OAuthError("access_denied", "account disabled by an administrator")
    return grants.open_login(
        conn,
        issuer,
        user_id=row.user_id,
        username=user.username,
        via="device",
        name=row.client_name,
        address=address,
    )


def pending(conn: Connection, user_code: str) -> Any:
    """The pending, unexpired code a person typed; NotFound otherwise."""
    d = t.device_codes
    code = opaque.normal_user_code(user_code)
    row = conn.execute(select(d).where(d.c.user_code == code)).first()
    if row is None:
        raise NotFound(f"no device login with code {code}: check the code on the device's screen")
    if row.expires_at <= utcnow():
        raise NotFound(f"the code {code} expired; start the login on the device again")
    if row.state != "pending":
        raise NotFound(f"the code {code} was already {row.state}")
    return row


def decide(
    conn: Connection, who: Principal, user_code: str, *, approve: bool, address: str | None
) -> dict[str, Any]:
    """Approve (or deny) a device login as ``who``: the device gets a login of this account."""
    who.require_account("approve device logins")
    if who.scope != Scope.FULL:
        raise Forbidden("a read-only credential cannot approve device logins")
    row = pending(conn, user_code)
    state = "approved" if approve else "denied"
    conn.execute(
        t.device_codes.update().where(t.device_codes.c.id == row.id).values(state=state, user_id=who.user_id)
    )
    audit.record(
        conn,
        f"device.{state}",
        user_id=who.user_id,
        address=address,
        user_code=row.user_code,
        client=row.client_name,
    )
    return {"user_code": row.user_code, "state": state, "client_name": row.client_name}
