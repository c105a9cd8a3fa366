"""The client's credentials, and how they renew themselves.

A request carries a short-lived access token. When it expires (or is about to)
the credential gets the next one on its own, so no 401 reaches the caller while
the login or token behind it is valid:

- ``LoginCredential`` (``tolu login``: password, device code, SSO) exchanges its
  refresh token for the next access + refresh token (they rotate) and writes them
  back to the credentials file, under a file lock: when several processes share
  the file, the first one renews and the others take what it wrote;
- ``TokenCredential`` (``tolu token create``: site agents and launchers) exchanges
  the token's secret for a new access token; the secret never changes, so any
  number of processes may share it;
- ``StaticCredential`` is a bare access token that cannot renew.

All are thread-safe: the threads of one launcher share one credential.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from runner.client.errors import AuthError, InvalidRequest

if TYPE_CHECKING:
    from runner.client._http import HTTP
    from runner.client.config import Credentials, CredentialStore

TOKEN_PATH = "/auth/token"
#: renew this long before the access token expires (or at a fifth of its life, if shorter).
RENEW_AHEAD_SEC = 30.0


@dataclass(frozen=True)
class Access:
    """An access token, when it expires and how long it lived (None: unknown)."""

    token: str
    expires_at: datetime | None = None
    lifetime_sec: float | None = None

    def due(self) -> bool:
        """Close enough to expiry to renew before sending: within RENEW_AHEAD_SEC, or a fifth
        of its lifetime when that is shorter (a 2-second token is renewed 0.4 s ahead)."""
        if self.expires_at is None:
            return False
        ahead = RENEW_AHEAD_SEC
        if self.lifetime_sec is not None:
            ahead = min(ahead, 0.2 * self.lifetime_sec)
        return (self.expires_at - datetime.now(UTC)).total_seconds() < ahead


def parse_expiry(value: Any) -> datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    text = str(value).replace("Z", "+00:00")
    parsed = datetime.fromisoformat(text)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def access_from(answer: dict[str, Any]) -> Access:
    """The access token of a token-endpoint answer."""
    lifetime = answer.get("expires_in")
    return Access(
        str(answer["access_token"]),
        parse_expiry(answer.get("expires_at")),
        float(lifetime) if lifetime else None,
    )


class Credential(ABC):
    """Supplies the access token of each request and renews it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()

    @property
    @abstractmethod
    def current(self) -> Access | None:
        """The access token now (None: none yet)."""

    def access_token(self, http: HTTP) -> str | None:
        """The token to send now, renewed first if it is missing or about to expire."""
        access = self.current
        if (access is None or access.due()) and self.can_renew:
            self.renew(http, access.token if access else None)
            access = self.current
        return access.token if access else None

    @property
    def can_renew(self) -> bool:
        return True

    def renew(self, http: HTTP, failed: str | None) -> bool:
        """Get a new access token after ``failed`` was refused (or is due). True if there is one
        to try; raises AuthError when the login or token behind it is no longer valid."""
        with self._lock:
            current = self.current
            if current is not None and current.token != failed and not current.due():
                return True  # another thread renewed already
            self._renew(http)
            return True

    @abstractmethod
    def _renew(self, http: HTTP) -> None: ...


class StaticCredential(Credential):
    def __init__(self, token: str) -> None:
        super().__init__()
        self._access = Access(token)

    @property
    def current(self) -> Access | None:
        return self._access

    @property
    def can_renew(self) -> bool:
        return False

    def renew(self, http: HTTP, failed: str | None) -> bool:
        return False

    def _renew(self, http: HTTP) -> None:  # pragma: no cover - never called
        raise AssertionError("a static token does not renew")


def _token_request(http: HTTP, form: dict[str, str], hint: str) -> dict[str, Any]:
    try:
        body: dict[str, Any] = http.post_form(TOKEN_PATH, form)
    except (AuthError, InvalidRequest) as exc:
        error = AuthError(exc.status, f"{exc.detail}; {hint}", method="POST", url=http.url + TOKEN_PATH)
        error.oauth_error = exc.oauth_error
        raise error from None
    return body


class TokenCredential(Credential):
    """A token from ``tolu token create``: its secret is exchanged for access tokens."""

    def __init__(self, secret: str) -> None:
        super().__init__()
        self.secret = secret
        self._access: Access | None = None

    @property
    def current(self) -> Access | None:
        return self._access

    def _renew(self, http: HTTP) -> None:
        answer = _token_request(
            http,
            {"grant_type": "client_credentials", "client_secret": self.secret},
            "make a new token with `tolu token create` (a site's: `tolu token create --site DIR`)",
        )
        self._access = access_from(answer)


class LoginCredential(Credential):
    """A login: access + refresh token, rotated at each renewal and written back to ``store``."""

    def __init__(
        self,
        access: Access,
        refresh_token: str | None,
        *,
        store: CredentialStore | None = None,
        on_change: Callable[[LoginCredential], None] | None = None,
    ) -> None:
        super().__init__()
        self._access: Access | None = access
        self.refresh_token = refresh_token
        self.store = store
        self.on_change = on_change

    @property
    def current(self) -> Access | None:
        return self._access

    @property
    def can_renew(self) -> bool:
        return self.refresh_token is not None

    def renew(self, http: HTTP, failed: str | None) -> bool:
        if self.refresh_token is None:
            return False
        return super().renew(http, failed)

    def _renew(self, http: HTTP) -> None:
        if self.store is None:
            self._exchange(http)
            return
        with self.store.locked():
            saved = self.store.read_or_none()
            if saved is not None and saved.refresh_token and saved.refresh_token != self.refresh_token:
                # Another process renewed this login: take what it wrote.
                self._adopt(saved)
                if self._access is not None and not self._access.due():
                    return
            self._exchange(http)
            self.store.save_login(self)

    def _exchange(self, http: HTTP) -> None:
        assert self.refresh_token is not None
        answer = _token_request(
            http,
            {"grant_type": "refresh_token", "refresh_token": self.refresh_token},
            "log in again: `tolu login`",
        )
        self._access = access_from(answer)
        self.refresh_token = answer.get("refresh_token") or self.refresh_token
        if self.on_change is not None:
            self.on_change(self)

    def _adopt(self, saved: Credentials) -> None:
        self._access = (
            Access(saved.token, parse_expiry(saved.expires_at), saved.expires_in) if saved.token else None
        )
        self.refresh_token = saved.refresh_token
