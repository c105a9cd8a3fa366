"""``/auth``: the token endpoint, device-code login, the account's tokens and audit events.

``POST /auth/token`` is an OAuth 2.0 token endpoint (RFC 6749): form-encoded (JSON
is accepted too), answering ``Token`` or an OAuth error body with ``error`` and
``error_description``. Its grant types:

- ``refresh_token`` (``refresh_token``): the next pair of a login (rotation);
- ``urn:ietf:params:oauth:grant-type:device_code`` (``device_code``): RFC 8628 polling;
- ``client_credentials`` (``client_secret``: a token from ``tolu token create``);
- ``urn:ietf:params:oauth:grant-type:token-exchange`` (``subject_token``: an ID token of
  the configured identity provider): a tolu login for a single sign-on.
"""

from __future__ import annotations

import json
from typing import Annotated, Any
from urllib.parse import parse_qsl

from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import Response

from runner import models
from runner.server.errors import NotFound, OAuthError, json_response
from runner.server.routes.deps import DEFAULT, Address, Auth, Db, Limit, Offset, Who
from runner.server.routes.users import issuer
from runner.server.services import audit, device, grants, sso

router = APIRouter(prefix="/auth", tags=["auth"])

GRANT_REFRESH = "refresh_token"
GRANT_DEVICE = "urn:ietf:params:oauth:grant-type:device_code"
GRANT_CLIENT = "client_credentials"
GRANT_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
GRANT_TYPES = (GRANT_REFRESH, GRANT_DEVICE, GRANT_CLIENT, GRANT_EXCHANGE)

OAUTH_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {
        "description": "OAuth error: `error` is invalid_grant, authorization_pending, slow_down, "
        "access_denied, expired_token, unsupported_grant_type or invalid_request"
    },
    401: {"description": "invalid_client: unknown, revoked or expired token secret"},
}


async def read_form(request: Request) -> dict[str, str]:
    """The fields of a form-encoded (RFC 6749) or JSON body."""
    raw = await request.body()
    if "json" in request.headers.get("content-type", ""):
        try:
            data = json.loads(raw or b"{}")
        except ValueError:
            raise OAuthError("invalid_request", "the body is not valid JSON") from None
        if not isinstance(data, dict):
            raise OAuthError("invalid_request", "the body must be an object")
        form = {str(k): str(v) for k, v in data.items() if v is not None}
    else:
        form = dict(parse_qsl(raw.decode(errors="replace"), keep_blank_values=True))
    if any("\x00" in k + v for k, v in form.items()):
        raise OAuthError("invalid_request", "NUL characters (\\x00) are not allowed")
    return form


Form = Annotated[dict[str, str], Depends(read_form)]


def _field(form: dict[str, str], name: str) -> str:
    value = form.get(name, "").strip()
    if not value:
        raise OAuthError("invalid_request", f"missing field {name!r}")
    return value


def base_url(request: Request, public_url: str) -> str:
    return public_url or str(request.base_url).rstrip("/")


TOKEN_FORM: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/x-www-form-urlencoded": {
                "schema": {
                    "type": "object",
                    "required": ["grant_type"],
                    "properties": {
                        "grant_type": {"type": "string", "enum": list(GRANT_TYPES)},
                        "refresh_token": {"type": "string"},
                        "device_code": {"type": "string"},
                        "client_secret": {"type": "string", "description": "a token from tolu token create"},
                        "subject_token": {"type": "string", "description": "the provider's ID token"},
                        "client_name": {"type": "string"},
                    },
                }
            }
        },
    }
}


@router.post("/token", response_model=models.Token, responses=OAUTH_ERRORS, openapi_extra=TOKEN_FORM)
def token(form: Form, db: Db, auth: Auth, address: Address) -> Response:
    """Exchange a grant (refresh token, device code, token secret, provider ID token) for tokens."""
    kind = form.get("grant_type", "")
    answer: dict[str, Any] | OAuthError
    if kind == GRANT_REFRESH:
        secret = _field(form, "refresh_token")
        with db.write() as conn:
            answer = grants.refresh(conn, issuer(auth), secret, address)
    elif kind == GRANT_DEVICE:
        code = _field(form, "device_code")
        with db.write() as conn:
            answer = device.poll(conn, issuer(auth), code, address)
    elif kind == GRANT_CLIENT:
        secret = _field(form, "client_secret")
        with db.write() as conn:
            answer = grants.exchange(conn, issuer(auth), secret)
    elif kind == GRANT_EXCHANGE:
        if auth.oidc is None:
            raise OAuthError(
                "unsupported_grant_type", "this server has no identity provider (TOLU_OIDC_ISSUER)"
            )
        claims = auth.oidc.verify(_field(form, "subject_token"))
        with db.write() as conn:
            account = sso.account_for(conn, auth.oidc.settings, claims, address)
            answer = grants.open_login(
                conn,
                issuer(auth),
                user_id=account.id,
                username=account.username,
                via="sso",
                name=form.get("client_name", "") or "single sign-on",
                address=address,
            )
    else:
        raise OAuthError(
            "unsupported_grant_type", f"grant_type {kind!r} is not one of {', '.join(GRANT_TYPES)}"
        )
    if isinstance(answer, OAuthError):
        raise answer
    return json_response(answer)


@router.post("/revoke", status_code=200, responses={400: OAUTH_ERRORS[400]})
def revoke_refresh(form: Form, db: Db, address: Address) -> Response:
    """RFC 7009: end the login of a refresh token (logout). Answers 200 even for unknown tokens."""
    with db.write() as conn:
        grants.revoke_refresh_token(conn, _field(form, "token"), address)
    return json_response({})


@router.post("/device", response_model=models.DeviceAuthorization, responses={400: OAUTH_ERRORS[400]})
def device_authorization(form: Form, db: Db, auth: Auth, request: Request) -> Response:
    """RFC 8628: start a device-code login; show ``user_code`` and ``verification_uri`` to the person."""
    with db.write() as conn:
        return json_response(
            device.start(
                conn,
                issuer(auth),
                client_name=form.get("client_name", ""),
                base_url=base_url(request, auth.settings.public_url),
            )
        )


@router.post("/device/decide", responses={404: {"description": "no pending, unexpired code"}})
def decide(body: models.DeviceDecision, who: Who, db: Db, address: Address) -> Response:
    """Approve (or deny, ``approve: false``) a device login as the caller."""
    with db.write() as conn:
        return json_response(device.decide(conn, who, body.user_code, approve=body.approve, address=address))


@router.get("/tokens", response_model=list[models.ApiToken])
def list_tokens(
    who: Who,
    db: Db,
    all: Annotated[bool, Query(description="also revoked and expired ones")] = False,
    kind: Annotated[str | None, Query(pattern="^(token|login)$")] = None,
) -> Response:
    """The account's tokens and logins, newest first."""
    with db.read() as conn:
        return json_response(grants.list_grants(conn, who, include_revoked=all, kind=kind))


@router.post("/tokens", status_code=201, response_model=models.ApiTokenCreated)
def create_token(body: models.ApiTokenCreate, who: Who, db: Db, address: Address) -> Response:
    """A new token with a scope and an expiry; its secret is in this answer only."""
    with db.write() as conn:
        return json_response(grants.create_token(conn, who, body, address), 201)


@router.delete("/tokens/{token_id}", response_model=models.ApiToken)
def revoke_token(token_id: models.Id32, who: Who, db: Db, address: Address) -> Response:
    """Revoke a token or login of the account: refused from its next request on."""
    with db.write() as conn:
        return json_response(grants.revoke(conn, who, token_id, address))


@router.get("/audit", response_model=models.Page[models.AuditEvent])
def audit_events(
    who: Who,
    db: Db,
    user_id: Annotated[
        int | None, Query(ge=0, le=models.INT32_MAX, description="another account (admins only)")
    ] = None,
    action: Annotated[str | None, Query(description="one action, e.g. login.failed")] = None,
    limit: Limit = DEFAULT,
    offset: Offset = 0,
) -> Response:
    """The account's audit events, newest first."""
    with db.read() as conn:
        return json_response(
            audit.filter(conn, who, user_id=user_id, action=action, limit=limit, offset=offset)
        )


@router.get("/sso", response_model=models.SSOInfo, responses={404: {"description": "no identity provider"}})
def sso_info(auth: Auth) -> Response:
    """The identity provider this server accepts (for ``tolu login --sso``)."""
    if auth.oidc is None:
        raise NotFound("this server has no identity provider configured (TOLU_OIDC_ISSUER)")
    s = auth.oidc.settings
    body = {"issuer": s.issuer, "client_id": s.client_id, "audience": s.expected_audience, "scopes": s.scopes}
    return json_response(body)
