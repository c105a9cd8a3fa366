"""Accounts of people who sign in through the identity provider (OpenID Connect).

An account is found by (issuer, ``sub``), the provider's stable identifier. On the
first sign-in it is made, named after the username claim (``preferred_username``,
else the email's local part, else ``sub``; a name already taken gets a suffix),
without a password. At every sign-in its email is refreshed and its role follows
the group claim: a member of the admin group is ``admin``, anyone else ``user``.
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import Connection, select

from runner.server import tables as t
from runner.server.auth.settings import OIDCSettings
from runner.server.db import utcnow
from runner.server.errors import Forbidden, Unauthorized
from runner.server.services import audit
from runner.server.services.users import name_taken

_NOT_IN_NAME = re.compile(r"[^A-Za-z0-9_.@+-]+")


def _groups(claims: dict[str, Any], claim: str) -> list[str]:
    value = claims.get(claim, [])
    if isinstance(value, str):
        return [value]
    return [str(g) for g in value] if isinstance(value, list) else []


def _wanted_name(claims: dict[str, Any], settings: OIDCSettings) -> str:
    for candidate in (
        claims.get(settings.username_claim),
        str(claims.get("email") or "").split("@")[0],
        claims["sub"],
    ):
        name = _NOT_IN_NAME.sub("-", str(candidate or "")).strip("-")[:100]
        if name:
            return name
    return "sso-user"


def _free_name(conn: Connection, wanted: str) -> str:
    name, n = wanted, 1
    while name_taken(conn, name.casefold()):
        n += 1
        name = f"{wanted}-{n}"
    return name


def account_for(conn: Connection, settings: OIDCSettings, claims: dict[str, Any], address: str | None) -> Any:
    """The account of a verified token's claims, made on first sight (id, username, role...)."""
    u = t.users
    sub = str(claims.get("sub") or "")
    if not sub:
        raise Unauthorized("invalid SSO token: no subject")
    email = claims.get("email") if isinstance(claims.get("email"), str) else None
    role = None
    if settings.admin_group:
        role = "admin" if settings.admin_group in _groups(claims, settings.groups_claim) else "user"
    columns = (u.c.id, u.c.username, u.c.role, u.c.disabled_at, u.c.email)
    where = (u.c.oidc_issuer == settings.issuer, u.c.oidc_subject == sub)
    row = conn.execute(select(*columns).where(*where)).first()
    if row is None:
        username = _free_name(conn, _wanted_name(claims, settings))
        user_id = conn.execute(
            u.insert().values(
                username=username,
                name_key=username.casefold(),
                password_hash="",
                role=role or "user",
                email=email,
                oidc_issuer=settings.issuer,
                oidc_subject=sub,
                created_at=utcnow(),
            )
        ).inserted_primary_key[0]  # type: ignore[index]
        audit.record(
            conn,
            "account.created",
            user_id=user_id,
            name_key=username.casefold(),
            address=address,
            via="sso",
            issuer=settings.issuer,
            subject=sub,
        )
        row = conn.execute(select(*columns).where(u.c.id == user_id)).one()
    else:
        changes: dict[str, Any] = {}
        if email and email != row.email:
            changes["email"] = email
        if role is not None and role != row.role:
            changes["role"] = role
            audit.record(
                conn, "account.role", user_id=row.id, address=address, by="identity provider", role=role
            )
        if changes:
            conn.execute(u.update().where(u.c.id == row.id).values(**changes))
            row = conn.execute(select(*columns).where(u.c.id == row.id)).one()
    if row.disabled_at is not None:
        raise Forbidden("account disabled by an administrator")
    return row
