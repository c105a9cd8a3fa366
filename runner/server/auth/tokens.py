"""tolu's access tokens: short-lived JWTs signed with the key ring (EdDSA).

An access token names its user, its grant and its scope. It is checked by
signature and expiry here, and against its grant (revoked? account disabled?) in
``runner.server.auth.verify`` at every request.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import jwt

from runner.server.auth.keys import ALGORITHM, KeyRing
from runner.server.auth.principal import Scope
from runner.server.errors import Unauthorized

#: the audience of tolu's access tokens: tolu servers, nothing else.
AUDIENCE = "tolu"
#: tokens remembered as verified (see ``AccessTokens.decode``); all forgotten when full.
VERIFIED_MAX = 4096


@dataclass(frozen=True, slots=True)
class AccessClaims:
    user_id: int
    username: str
    grant_id: int
    scope: Scope
    site_id: int | None
    expires_at: datetime


class AccessTokens:
    def __init__(self, keys: KeyRing, *, issuer: str, ttl: timedelta) -> None:
        self.keys = keys
        self.issuer = issuer
        self.ttl = ttl
        #: token -> (key id, claims) of the tokens whose signature and claims checked out
        self._verified: dict[str, tuple[str, AccessClaims]] = {}

    def issue(
        self, *, user_id: int, username: str, grant_id: int, scope: Scope, site_id: int | None = None
    ) -> tuple[str, datetime]:
        now = datetime.now(UTC)
        expires = now + self.ttl
        claims: dict[str, object] = {
            "iss": self.issuer,
            "aud": AUDIENCE,
            "sub": str(user_id),
            "name": username,
            "gid": grant_id,
            "scope": scope.value,
            "iat": now,
            "exp": expires,
            "jti": secrets.token_urlsafe(12),
        }
        if site_id is not None:
            claims["site"] = site_id
        key = self.keys.signing_key()
        token = jwt.encode(
            claims, key.private, algorithm=ALGORITHM, headers={"kid": key.kid, "typ": "at+jwt"}
        )
        return token, expires

    def is_ours(self, token: str) -> bool:
        """Signed by one of our keys (by its ``kid``): tolu's token, not an identity provider's."""
        if token in self._verified:
            return True
        try:
            kid = jwt.get_unverified_header(token).get("kid")
        except jwt.InvalidTokenError:
            return False
        return isinstance(kid, str) and self.keys.knows(kid)

    def decode(self, token: str) -> AccessClaims:
        """The claims of one of our tokens; Unauthorized when it is not, or no longer, good.

        A token that checked out is remembered with its claims: a launcher sends the same
        one with every request, and its signature (Ed25519) and claims cost ~0.11 ms of
        the server's CPU each time. A remembered token is still refused once it expires
        or its key has left the ring; its grant is checked at every request anyway
        (``runner.server.auth.verify``).
        """
        known = self._verified.get(token)
        if known is not None:
            kid, claims = known
            if claims.expires_at > datetime.now(UTC) and self.keys.knows(kid):
                return claims
            self._verified.pop(token, None)
        checked = self._decode(token)
        if len(self._verified) >= VERIFIED_MAX:
            self._verified.clear()
        self._verified[token] = checked
        return checked[1]

    def _decode(self, token: str) -> tuple[str, AccessClaims]:
        try:
            kid = jwt.get_unverified_header(token).get("kid")
            public = self.keys.public_key(kid) if isinstance(kid, str) else None
            if public is None or not isinstance(kid, str):
                raise Unauthorized("invalid token: not signed by a key of this server")
            claims = jwt.decode(
                token,
                public,
                algorithms=[ALGORITHM],
                audience=AUDIENCE,
                issuer=self.issuer,
                options={"require": ["exp", "sub", "gid", "scope", "iss", "aud"]},
            )
            scope = Scope(claims["scope"])
            site = claims.get("site")
            return kid, AccessClaims(
                user_id=int(claims["sub"]),
                username=str(claims.get("name", "")),
                grant_id=int(claims["gid"]),
                scope=scope,
                site_id=int(site) if site is not None else None,
                expires_at=datetime.fromtimestamp(int(claims["exp"]), UTC),
            )
        except jwt.ExpiredSignatureError:
            raise Unauthorized("token expired") from None
        except (jwt.InvalidTokenError, ValueError, TypeError) as exc:
            raise Unauthorized(f"invalid token: {exc}") from None
