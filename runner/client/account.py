"""``client.account``: the account's tokens, logins, audit events and device approvals;
``client.admin``: accounts, for administrators."""

from __future__ import annotations

from typing import Literal

from runner.client._base import Manager, adapter
from runner.models import ApiToken, ApiTokenCreated, AuditEvent, Page, User

Scope = Literal["full", "read", "site"]


class AccountManager(Manager):
    path = "/auth/tokens"

    def create_token(
        self,
        name: str,
        *,
        scope: Scope = "full",
        site_id: int | None = None,
        expires_in_days: float | None = 90,
    ) -> ApiTokenCreated:
        """A new token; its secret (``.token``) is in this answer only."""
        body = {"name": name, "scope": scope, "site_id": site_id, "expires_in_days": expires_in_days}
        created: ApiTokenCreated = self._send("POST", ApiTokenCreated, "/auth/tokens", body=body)
        return created

    def tokens(
        self, *, include_revoked: bool = False, kind: Literal["token", "login"] | None = None
    ) -> list[ApiToken]:
        """The account's tokens and logins, newest first."""
        params = {"all": include_revoked, "kind": kind}
        resp = self._http.request("GET", "/auth/tokens", params=params)
        tokens: list[ApiToken] = adapter(list[ApiToken]).validate_json(resp.content)
        return tokens

    def revoke(self, token_id: int) -> ApiToken:
        """Revoke a token or login: refused from its next request on."""
        revoked: ApiToken = self._send("DELETE", ApiToken, f"/auth/tokens/{token_id}")
        return revoked

    def audit(self, *, action: str | None = None, limit: int = 100, offset: int = 0) -> Page[AuditEvent]:
        """The account's audit events, newest first."""
        resp = self._http.request(
            "GET", "/auth/audit", params={"action": action, "limit": limit, "offset": offset}
        )
        page: Page[AuditEvent] = adapter(Page[AuditEvent]).validate_json(resp.content)
        return page

    def decide_device(self, user_code: str, *, approve: bool = True) -> dict[str, str]:
        """Approve (or deny) a device login with this account: its ``user_code`` (as the
        server spells it), ``state`` and ``client_name``."""
        resp = self._http.request(
            "POST", "/auth/device/decide", body={"user_code": user_code, "approve": approve}
        )
        answer: dict[str, str] = resp.json()
        return answer


class AdminManager(Manager):
    path = "/admin/users"

    def users(self, *, limit: int | None = None) -> list[User]:
        return self._follow(User, {}, limit)

    def update_user(self, user_id: int, *, disabled: bool | None = None, role: str | None = None) -> User:
        body = {k: v for k, v in {"disabled": disabled, "role": role}.items() if v is not None}
        user: User = self._send("PATCH", User, f"/admin/users/{user_id}", body=body)
        return user


__all__ = ["AccountManager", "AdminManager"]
