"""``/.well-known``: the public signing keys and the authorization-server metadata."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from runner.server.errors import json_response
from runner.server.routes.auth import GRANT_TYPES, base_url
from runner.server.routes.deps import Auth

router = APIRouter(prefix="/.well-known", tags=["auth"])


@router.get("/jwks.json")
def jwks(auth: Auth) -> Response:
    """The public keys that verify tolu's access tokens (RFC 7517), the signing one first."""
    resp = json_response(auth.tokens.keys.jwks())
    resp.headers["Cache-Control"] = "public, max-age=300"
    return resp


@router.get("/oauth-authorization-server")
def metadata(auth: Auth, request: Request) -> Response:
    """RFC 8414 metadata: where the token and device endpoints are."""
    base = base_url(request, auth.settings.public_url)
    body: dict[str, Any] = {
        "issuer": auth.settings.issuer,
        "token_endpoint": f"{base}/auth/token",
        "device_authorization_endpoint": f"{base}/auth/device",
        "revocation_endpoint": f"{base}/auth/revoke",
        "jwks_uri": f"{base}/.well-known/jwks.json",
        "grant_types_supported": list(GRANT_TYPES),
        "token_endpoint_auth_methods_supported": ["none", "client_secret_post"],
    }
    if auth.oidc is not None:
        body["tolu_sso_issuer"] = auth.oidc.issuer
    return json_response(body)
