"""Passwords (argon2) and bearer tokens (JWT, HS256, with expiry).

Kept apart from the routes so other kinds of login (device codes, site tokens) can
be added here without touching the resources.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from runner.server.errors import Unauthorized

SECRET_FILE = "secret_key"
ALGORITHM = "HS256"

_hasher = PasswordHasher()
#: Verified against when a user does not exist, so a wrong name costs as much as a
#: wrong password (no user enumeration by timing).
_DUMMY_HASH = _hasher.hash("not-a-real-password")


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    try:
        return _hasher.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
    except (VerificationError, InvalidHashError):
        return False


def load_or_create_secret(data_dir: Path) -> str:
    """The signing key: ``$TOLU_SECRET_KEY``, else ``<data_dir>/secret_key`` (made 0600)."""
    env = os.environ.get("TOLU_SECRET_KEY")
    if env:
        return env
    path = Path(data_dir) / SECRET_FILE
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(48)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(key + "\n")
    return key


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the user the bearer token was issued to."""

    user_id: int
    username: str


class TokenIssuer:
    def __init__(self, secret: str, ttl: timedelta) -> None:
        self._secret = secret
        self.ttl = ttl

    def issue(self, user_id: int, username: str) -> tuple[str, datetime]:
        expires = datetime.now(UTC) + self.ttl
        payload = {"sub": str(user_id), "name": username, "exp": expires, "iat": datetime.now(UTC)}
        return jwt.encode(payload, self._secret, algorithm=ALGORITHM), expires

    def verify(self, token: str) -> Principal:
        try:
            payload = jwt.decode(
                token, self._secret, algorithms=[ALGORITHM], options={"require": ["exp", "sub"]}
            )
            return Principal(int(payload["sub"]), str(payload.get("name", "")))
        except jwt.ExpiredSignatureError:
            raise Unauthorized("token expired; log in again (tolu login)") from None
        except (jwt.InvalidTokenError, ValueError):
            raise Unauthorized("invalid token") from None


_bearer = HTTPBearer(auto_error=False, description="a token from POST /users/login")


def principal(
    request: Request, credentials: HTTPAuthorizationCredentials | None = Depends(_bearer)
) -> Principal:
    """FastAPI dependency: the caller, from ``Authorization: Bearer <token>``."""
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Unauthorized("not authenticated: send Authorization: Bearer <token>")
    issuer: TokenIssuer = request.app.state.tokens
    return issuer.verify(credentials.credentials.strip())
