"""Helpers shared by the services: owned-row lookup, paging, ordering, the bulk size limit."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, Connection, Select, func, select

from runner.models import MAX_BULK
from runner.server.auth.principal import Principal
from runner.server.errors import Invalid, NotFound

DEFAULT_LIMIT = 100
MAX_LIMIT = 10_000


def ensure_owned(conn: Connection, table: Any, row_id: int, who: Principal, what: str) -> None:
    """Raise NotFound unless ``row_id`` exists and ``who`` reaches it (``Principal.owns``)."""
    found = conn.execute(select(table.c.id).where(table.c.id == row_id, who.owns(table))).first()
    if found is None:
        raise NotFound(f"{what} {row_id} not found")


def plain(row: Any) -> dict[str, Any]:
    """A result row as a dict with plain ``str`` keys (what orjson serializes)."""
    return {str(k): v for k, v in row._mapping.items()}


def count(conn: Connection, table: Any, where: Sequence[ColumnElement[bool]]) -> int:
    return int(conn.execute(select(func.count()).select_from(table).where(*where)).scalar() or 0)


def order(
    stmt: Select[Any], table: Any, ordering: str | None, allowed: Sequence[str], default: str
) -> Select[Any]:
    key = ordering or default
    name = key.lstrip("-")
    if name not in allowed:
        raise Invalid.at(
            ["query", "ordering"],
            f"cannot order by {key!r}; use one of {', '.join(allowed)} (prefix - to reverse)",
        )
    col = table.c[name]
    primary = col.desc() if key.startswith("-") else col.asc()
    if name == "id":
        return stmt.order_by(primary)
    return stmt.order_by(primary, table.c.id.desc() if key.startswith("-") else table.c.id.asc())


def too_many(n: int, what: str) -> Invalid:
    """The 422 for a bulk request of ``n`` elements, more than MAX_BULK."""
    return Invalid.at(["body"], f"at most {MAX_BULK} {what} per request, got {n}; split it", "too_long")
