"""The token check: ``authenticate(request) -> Principal``, one replaceable function;
``caller``, the routes' dependency, asks it (or finds what the gate asked it).

A bearer token is either tolu's own access token (its key id is one of the key
ring's) or, when a provider is configured, an identity provider's token (SSO).
tolu's token is checked by signature and expiry, then against its grant in the
database (revoked, expired, account disabled: refused at this very request).
A provider's token is checked by ``OIDCProvider.verify`` and mapped to its account.

Scope rules that hold for every endpoint live here too: a read-only credential
may only read (GET/HEAD/OPTIONS). What a site token reaches is narrowed by the
services (``Principal.owns``).
"""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request
from sqlalchemy import Connection
from starlette.concurrency import run_in_threadpool

from runner.server.auth.oidc import OIDCProvider
from runner.server.auth.principal import Principal, Scope
from runner.server.auth.settings import AuthSettings
from runner.server.auth.tokens import AccessTokens
from runner.server.db import Database
from runner.server.errors import Forbidden, Unauthorized

READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(frozen=True)
class Verifier:
    """What checking a token needs; one per app (``app.state.auth``)."""

    settings: AuthSettings
    tokens: AccessTokens
    oidc: OIDCProvider | None


def bearer(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("not authenticated: send Authorization: Bearer <token>")
    return token.strip()


def client_address(request: Request) -> str | None:
    return request.client.host if request.client else None


def authenticate(request: Request, conn: Connection | None = None) -> Principal:
    """The caller of ``request``; Unauthorized (401) or Forbidden (403) when refused.
    ``conn``: a transaction the caller has open anyway, for the grant's row (one
    transaction per request, not two: runner/server/hotpath.py)."""
    cached = getattr(request.state, "principal", None)
    if isinstance(cached, Principal):
        return cached
    who = principal_for(
        request.app.state.auth, request.app.state.db, bearer(request), client_address(request), conn
    )
    if who.scope == Scope.READ and request.method not in READ_METHODS:
        raise Forbidden("this token is read-only")
    request.state.principal = who
    return who


async def caller(request: Request) -> Principal:
    """``authenticate`` as a route's dependency (``routes.deps.Who``).

    The gate (runner/server/gate.py) has authenticated every request for a route that
    depends on this, before its body was read, and left the principal in the request's
    state: this hands it on. A coroutine on purpose: FastAPI runs a plain function
    dependency in its thread pool, a hand-off to a worker thread and back at every
    request (0.3 ms of the server's CPU on the development machine, for nothing here).
    """
    cached = getattr(request.state, "principal", None)
    if isinstance(cached, Principal):
        return cached
    return await run_in_threadpool(authenticate, request)  # an app without the gate


def principal_for(
    verifier: Verifier, db: Database, token: str, address: str | None, conn: Connection | None = None
) -> Principal:
    """Who ``token`` speaks for (Unauthorized when refused): the check of every request,
    and of a token that arrives another way (the event stream's first message). The
    database is asked through ``conn`` when given (a write transaction: a provider's
    first sign-in makes its account), else in a transaction of its own."""
    from runner.server.services import grants, sso

    if verifier.tokens.is_ours(token) or verifier.oidc is None:
        claims = verifier.tokens.decode(token)
        if conn is not None:
            row = grants.check(conn, claims.grant_id)
        else:
            with db.read() as read:
                row = grants.check(read, claims.grant_id)
        return Principal(
            user_id=row.user_id,
            username=row.username,
            scope=Scope(row.scope),
            site_id=row.site_id,
            grant_id=row.id,
            role=row.role,
            via="token" if row.kind == "token" else "login",
        )
    provider_claims = verifier.oidc.verify(token)
    if conn is not None:  # (the account a first sign-in makes is the request's to commit)
        account = sso.account_for(conn, verifier.oidc.settings, provider_claims, address)
    else:
        with db.write() as write:
            account = sso.account_for(write, verifier.oidc.settings, provider_claims, address)
    return Principal(user_id=account.id, username=account.username, role=account.role, via="sso")
