"""Helpers of the auth tests (imported as ``auth_helpers``): tokens of each kind, servers
with their own auth settings."""

from __future__ import annotations

import secrets
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
import requests

from runner.server.auth.keys import ALGORITHM, KeyRing
from runner.server.auth.tokens import AUDIENCE
from runner.server.process import ServerProcess

TOKEN_PATH = "/auth/token"
DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"


def post_token(url: str, **form: str) -> requests.Response:
    return requests.post(url + TOKEN_PATH, data=form, timeout=30)


def exchange(url: str, secret: str) -> str:
    """The access token a token's secret is exchanged for."""
    resp = post_token(url, grant_type="client_credentials", client_secret=secret)
    assert resp.status_code == 200, resp.text
    return str(resp.json()["access_token"])


def create_token(url: str, access: str, **body: Any) -> dict[str, Any]:
    resp = requests.post(
        url + "/auth/tokens",
        json={"name": "t", **body},
        headers={"Authorization": f"Bearer {access}"},
        timeout=30,
    )
    assert resp.status_code == 201, resp.text
    made: dict[str, Any] = resp.json()
    return made


def revoke(url: str, access: str, token_id: int) -> None:
    resp = requests.delete(
        f"{url}/auth/tokens/{token_id}", headers={"Authorization": f"Bearer {access}"}, timeout=30
    )
    assert resp.status_code == 200, resp.text


def expired_access(data_dir: Path, valid_access: str) -> str:
    """``valid_access`` with its expiry in the past, signed with the server's own key: a real
    tolu access token that has expired (the server must refuse it by ``exp`` alone)."""
    claims = jwt.decode(valid_access, options={"verify_signature": False})
    now = datetime.now(UTC)
    claims.update(iat=now - timedelta(minutes=10), exp=now - timedelta(minutes=5))
    key = KeyRing(data_dir, rotate_after=timedelta(days=3650)).load().signing_key()
    assert claims["aud"] == AUDIENCE
    return jwt.encode(claims, key.private, algorithm=ALGORITHM, headers={"kid": key.kid, "typ": "at+jwt"})


def register_login(url: str, username: str | None = None, password: str | None = None) -> dict[str, Any]:
    """Register and log in with a password; the token answer (access + refresh)."""
    username = username or f"u-{secrets.token_hex(5)}"
    password = password or secrets.token_urlsafe(16)
    resp = requests.post(
        url + "/users/register", json={"username": username, "password": password}, timeout=30
    )
    assert resp.status_code == 201, resp.text
    resp = requests.post(url + "/users/login", json={"username": username, "password": password}, timeout=30)
    assert resp.status_code == 200, resp.text
    answer: dict[str, Any] = resp.json()
    answer["password"] = password
    return answer


@contextmanager
def auth_server(
    tmp_path: Path, env: Mapping[str, str], *, name: str = "auth-server"
) -> Iterator[ServerProcess]:
    """A server (SQLite) with its own auth settings (``TOLU_*`` in ``env``), stopped by PID."""
    server = ServerProcess(tmp_path / name, env=dict(env))
    server.start(timeout=90)
    try:
        yield server
    finally:
        server.stop()
