"""How a server authenticates: token lifetimes, limits, the identity provider.

Read from ``TOLU_*`` environment variables at startup (docs/auth.md lists them); a
bad value stops the server with one line naming the variable.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TypeVar

from runner.server.auth.passwords import HashCost

T = TypeVar("T")


class AuthSettingsError(ValueError):
    """A ``TOLU_*`` auth setting has a value the server cannot use."""


@dataclass(frozen=True, kw_only=True)
class OIDCSettings:
    """An OpenID Connect provider whose tokens the server accepts (single sign-on)."""

    #: the issuer URL; ``<issuer>/.well-known/openid-configuration`` is its discovery document.
    issuer: str
    #: the client id registered for tolu at the provider (device flow of `tolu login --sso`).
    client_id: str
    #: the ``aud`` a token must carry [default: client_id].
    audience: str = ""
    #: the scopes `tolu login --sso` asks for (add the one that releases the group claim).
    scopes: str = "openid profile email"
    #: the claim that names the tolu account made on first sign-in.
    username_claim: str = "preferred_username"
    #: the claim listing the user's groups, and the group whose members are tolu admins.
    groups_claim: str = "groups"
    admin_group: str = ""
    #: clock skew allowed on ``exp``/``iat`` (seconds).
    leeway_sec: float = 30.0
    #: a token signed by an unknown key refetches the provider's JWKS at most this often.
    jwks_min_refresh_sec: float = 60.0

    @property
    def expected_audience(self) -> str:
        return self.audience or self.client_id


@dataclass(frozen=True, kw_only=True)
class AuthSettings:
    #: lifetime of an access token (seconds); clients renew them on their own.
    access_token_ttl_sec: float = 900.0
    #: a login (password, device, SSO) lasts this long without being used.
    refresh_token_ttl_sec: float = 30 * 86400.0
    #: a refresh token used again within this many seconds of its first use still works
    #: (two processes refreshing at once, an answer lost on the way); later it revokes the login.
    refresh_reuse_grace_sec: float = 30.0
    #: the ``iss`` of tolu's own tokens.
    issuer: str = "tolu"
    #: the signing key is replaced when it is older than this (days).
    key_rotation_days: float = 30.0
    device_code_ttl_sec: float = 600.0
    device_poll_interval_sec: float = 5.0
    #: failed logins allowed per account and per address within ``login_window_sec``.
    login_max_failures: int = 10
    login_max_failures_per_address: int = 50
    login_window_sec: float = 900.0
    password_min_length: int = 10
    #: what a password hash costs (argon2id; ``TOLU_PASSWORD_HASH=m=65536,t=3,p=4``).
    password_hash: HashCost = field(default_factory=HashCost)
    #: accounts that are admins whatever their role in the database.
    admin_users: tuple[str, ...] = ()
    #: the server's URL as users reach it (device-code login prints it) [default: the request's].
    public_url: str = ""
    oidc: OIDCSettings | None = field(default=None)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> AuthSettings:
        env = os.environ if env is None else env
        number = _reader(env, float, "a number")
        count = _reader(env, int, "a whole number")
        oidc = None
        issuer = env.get("TOLU_OIDC_ISSUER", "").strip()
        if issuer:
            client_id = env.get("TOLU_OIDC_CLIENT_ID", "").strip()
            if not client_id:
                raise AuthSettingsError("TOLU_OIDC_ISSUER is set but TOLU_OIDC_CLIENT_ID is not")
            oidc = OIDCSettings(
                issuer=issuer.rstrip("/"),
                client_id=client_id,
                audience=env.get("TOLU_OIDC_AUDIENCE", "").strip(),
                scopes=env.get("TOLU_OIDC_SCOPES", "").strip() or "openid profile email",
                username_claim=env.get("TOLU_OIDC_USERNAME_CLAIM", "").strip() or "preferred_username",
                groups_claim=env.get("TOLU_OIDC_GROUPS_CLAIM", "").strip() or "groups",
                admin_group=env.get("TOLU_OIDC_ADMIN_GROUP", "").strip(),
                leeway_sec=number("TOLU_OIDC_LEEWAY", 30.0),
                jwks_min_refresh_sec=number("TOLU_OIDC_JWKS_MIN_REFRESH", 60.0),
            )
        settings = cls(
            access_token_ttl_sec=number("TOLU_ACCESS_TOKEN_TTL", cls.access_token_ttl_sec),
            refresh_token_ttl_sec=number("TOLU_REFRESH_TOKEN_TTL", cls.refresh_token_ttl_sec),
            refresh_reuse_grace_sec=number("TOLU_REFRESH_REUSE_GRACE", cls.refresh_reuse_grace_sec),
            key_rotation_days=number("TOLU_KEY_ROTATION_DAYS", cls.key_rotation_days),
            device_code_ttl_sec=number("TOLU_DEVICE_CODE_TTL", cls.device_code_ttl_sec),
            device_poll_interval_sec=number("TOLU_DEVICE_POLL_INTERVAL", cls.device_poll_interval_sec),
            login_max_failures=count("TOLU_LOGIN_MAX_FAILURES", cls.login_max_failures),
            login_max_failures_per_address=count(
                "TOLU_LOGIN_MAX_FAILURES_PER_ADDRESS", cls.login_max_failures_per_address
            ),
            login_window_sec=number("TOLU_LOGIN_WINDOW", cls.login_window_sec),
            password_min_length=count("TOLU_PASSWORD_MIN_LENGTH", cls.password_min_length),
            password_hash=_hash_cost(env),
            admin_users=tuple(
                n.strip().casefold() for n in env.get("TOLU_ADMIN_USERS", "").split(",") if n.strip()
            ),
            public_url=env.get("TOLU_PUBLIC_URL", "").strip().rstrip("/"),
            oidc=oidc,
        )
        if settings.access_token_ttl_sec < 1:
            raise AuthSettingsError("TOLU_ACCESS_TOKEN_TTL: at least 1 second")
        if settings.password_min_length < 8:
            raise AuthSettingsError("TOLU_PASSWORD_MIN_LENGTH: at least 8 (NIST SP 800-63B)")
        return settings


def _hash_cost(env: Mapping[str, str]) -> HashCost:
    text = env.get("TOLU_PASSWORD_HASH", "").strip()
    if not text:
        return HashCost()
    try:
        return HashCost.parse(text)
    except ValueError as exc:
        raise AuthSettingsError(f"TOLU_PASSWORD_HASH: {exc}") from None


def _reader(env: Mapping[str, str], kind: Callable[[str], T], what: str) -> Callable[[str, T], T]:
    def read(name: str, default: T) -> T:
        text = env.get(name, "").strip()
        if not text:
            return default
        try:
            value = kind(text)
        except ValueError:
            raise AuthSettingsError(f"{name}={text!r}: expected {what}") from None
        if isinstance(value, int | float) and value < 0:
            raise AuthSettingsError(f"{name}={text!r}: must not be negative")
        return value

    return read
