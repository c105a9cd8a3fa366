"""An OpenID Connect provider whose tokens tolu accepts (single sign-on).

The provider is named by its issuer URL. Its discovery document
(``<issuer>/.well-known/openid-configuration``) gives the JWKS URL; the keys are
fetched when first needed and again when a token names a key id not seen yet (the
provider rotated its keys), at most once per ``jwks_min_refresh_sec`` so that
forged key ids cannot make tolu hammer the provider. A token is accepted when its
signature verifies with the provider's key, ``iss`` is the configured issuer, ``aud``
holds the configured audience, and ``exp``/``iat`` hold (with ``leeway_sec``).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from typing import Any

import jwt
import requests

from runner.server.auth.settings import OIDCSettings
from runner.server.errors import Unauthorized

log = logging.getLogger("tolu.server.oidc")

#: the signature algorithms accepted from a provider (asymmetric only: never HS*, never none).
ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"]


class ProviderUnavailable(Unauthorized):
    """The provider's discovery document or keys could not be fetched."""


class OIDCProvider:
    def __init__(self, settings: OIDCSettings, *, timeout: float = 10.0) -> None:
        self.settings = settings
        self.timeout = timeout
        self._lock = threading.Lock()
        self._metadata: dict[str, Any] | None = None
        self._keys: dict[str, Any] = {}
        self._fetched_at = float("-inf")

    @property
    def issuer(self) -> str:
        return self.settings.issuer

    def metadata(self) -> dict[str, Any]:
        """The discovery document (fetched once)."""
        with self._lock:
            if self._metadata is None:
                url = self.issuer + "/.well-known/openid-configuration"
                doc = self._get(url)
                if doc.get("issuer", "").rstrip("/") != self.issuer:
                    raise ProviderUnavailable(
                        f"identity provider: {url} names issuer {doc.get('issuer')!r}, not {self.issuer!r}"
                    )
                self._metadata = doc
            return self._metadata

    def _get(self, url: str) -> dict[str, Any]:
        try:
            resp = requests.get(url, timeout=self.timeout, headers={"Accept": "application/json"})
            resp.raise_for_status()
            body = resp.json()
        except (requests.RequestException, ValueError) as exc:
            log.warning("identity provider: cannot fetch %s: %s", url, exc)
            raise ProviderUnavailable(f"identity provider unavailable ({url}): {exc}") from None
        if not isinstance(body, dict):
            raise ProviderUnavailable(f"identity provider: {url} did not answer a JSON object")
        return body

    def _key(self, kid: str | None) -> Any:
        with self._lock:
            key = self._keys.get(kid or "")
            if key is None and kid is None and len(self._keys) == 1:
                key = next(iter(self._keys.values()))
            if key is not None:
                return key
            now = time.monotonic()
            if now - self._fetched_at < self.settings.jwks_min_refresh_sec:
                raise Unauthorized(f"invalid SSO token: signed by an unknown key {kid!r}")
            self._fetched_at = now
        jwks = self._get(str(self.metadata()["jwks_uri"]))
        keys: dict[str, Any] = {}
        for jwk in jwks.get("keys", []):
            if jwk.get("use", "sig") != "sig":
                continue
            try:
                keys[str(jwk.get("kid", ""))] = jwt.PyJWK.from_json(json.dumps(jwk)).key
            except jwt.PyJWKError as exc:
                log.warning("identity provider: skipping key %s: %s", jwk.get("kid"), exc)
        with self._lock:
            if set(keys) != set(self._keys):
                log.info("identity provider keys: %s", ", ".join(sorted(keys)) or "none")
            self._keys = keys
            key = keys.get(kid or "")
            if key is None and kid is None and len(keys) == 1:
                key = next(iter(keys.values()))
        if key is None:
            raise Unauthorized(f"invalid SSO token: signed by an unknown key {kid!r}")
        return key

    def verify(self, token: str) -> dict[str, Any]:
        """The claims of a provider-signed token, or Unauthorized saying which check failed."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError as exc:
            raise Unauthorized(f"invalid token: {exc}") from None
        if header.get("alg") not in ALGORITHMS:
            raise Unauthorized(f"invalid SSO token: algorithm {header.get('alg')!r} is not accepted")
        key = self._key(header.get("kid"))
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=[header["alg"]],
                audience=self.settings.expected_audience,
                issuer=self.issuer,
                leeway=self.settings.leeway_sec,
                options={"require": ["exp", "iat", "iss", "aud", "sub"]},
            )
        except jwt.ExpiredSignatureError:
            raise Unauthorized("SSO token expired; sign in again (tolu login --sso)") from None
        except jwt.InvalidAudienceError:
            raise Unauthorized(
                f"invalid SSO token: wrong audience (tolu accepts {self.settings.expected_audience!r})"
            ) from None
        except jwt.InvalidIssuerError:
            raise Unauthorized(f"invalid SSO token: wrong issuer (tolu accepts {self.issuer!r})") from None
        except jwt.InvalidSignatureError:
            raise Unauthorized("invalid SSO token: bad signature") from None
        except jwt.InvalidTokenError as exc:
            raise Unauthorized(f"invalid SSO token: {exc}") from None
        return claims

    def unverified_issuer(self, token: str) -> str | None:
        try:
            iss = jwt.decode(token, options={"verify_signature": False}).get("iss")
        except jwt.InvalidTokenError:
            return None
        return iss if isinstance(iss, str) else None
