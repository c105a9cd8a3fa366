"""Who is calling, with what reach: the ``Principal`` every service receives.

A principal is a user seen through one credential. Its scope narrows what the
user could do: ``full`` is everything the user may do, ``read`` only reads, and
``site`` reaches only the rows of one site (the credential of a site's agent and
launchers). ``owns(table)`` is the one predicate the services put in every query,
so a site token cannot even see that another site's rows exist.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from sqlalchemy import ColumnElement, and_

from runner.server.errors import Forbidden


class Scope(StrEnum):
    FULL = "full"
    READ = "read"
    SITE = "site"


@dataclass(frozen=True, slots=True)
class Principal:
    user_id: int
    username: str
    scope: Scope = Scope.FULL
    #: the one site a ``site`` scope reaches.
    site_id: int | None = None
    #: the grant (login or token) the credential belongs to; None for a provider's token (SSO).
    grant_id: int | None = None
    role: str = "user"
    #: how the credential was obtained: password, device, sso, token.
    via: str = "password"

    @property
    def is_admin(self) -> bool:
        return self.role == "admin" and self.scope == Scope.FULL

    def owns(self, table: Any) -> ColumnElement[bool]:
        """The rows of ``table`` this principal reaches: its user's, and of a site token only its site's."""
        return owned_by(table, self.user_id, self.site_id)

    def require_account(self, doing: str) -> None:
        """Refuse what only the account itself may do (a site token may not, whatever it is)."""
        if self.scope == Scope.SITE:
            raise Forbidden(f"a site token cannot {doing}; use your own login")

    def require_admin(self) -> None:
        if not self.is_admin:
            raise Forbidden("this needs an administrator (role admin, full-scope credential)")


def owned_by(table: Any, owner: Any, site: Any | None) -> ColumnElement[bool]:
    """``Principal.owns``' rule with the values given: the user's rows, and with ``site``
    only that site's. The values may be bound parameters (a statement built once)."""
    mine: ColumnElement[bool] = table.c.owner_id == owner
    if site is None:
        return mine
    column = table.c.id if table.name == "sites" else table.c.site_id
    return and_(mine, column == site)
