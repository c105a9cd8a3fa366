"""Sites: where a user's jobs run (one site directory on one host)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, select

from runner.models import SiteCreate, SiteUpdate
from runner.server import rows
from runner.server import tables as t
from runner.server.auth.principal import Principal
from runner.server.db import to_naive_utc, utcnow
from runner.server.errors import Conflict, NotFound
from runner.server.services import purge
from runner.server.services.common import count, ensure_owned


def _select() -> Any:
    return select(*rows.SITE_COLUMNS).join(t.users, t.users.c.id == t.sites.c.owner_id)


def get(conn: Connection, who: Principal, site_id: int) -> dict[str, Any]:
    row = conn.execute(_select().where(t.sites.c.id == site_id, who.owns(t.sites))).first()
    if row is None:
        raise NotFound(f"site {site_id} not found")
    return rows.one(rows.SITE_KEYS, row)


def _check_name_free(conn: Connection, who: Principal, name: str, except_id: int | None = None) -> None:
    stmt = select(t.sites.c.id).where(t.sites.c.owner_id == who.user_id, t.sites.c.name == name)
    found = conn.execute(stmt).scalar()
    if found is not None and found != except_id:
        raise Conflict(f"you already have a site named {name!r} (site {found})")


def create(conn: Connection, who: Principal, body: SiteCreate) -> dict[str, Any]:
    who.require_account("create sites")
    _check_name_free(conn, who, body.name)
    site_id = conn.execute(
        t.sites.insert().values(
            owner_id=who.user_id,
            name=body.name,
            path=body.path,
            hostname=body.hostname,
            settings_summary=body.settings_summary,
            last_heartbeat=None,
            created_at=utcnow(),
        )
    ).inserted_primary_key[0]  # type: ignore[index]
    return get(conn, who, site_id)


def filter(conn: Connection, who: Principal, *, name: str | None, limit: int, offset: int) -> dict[str, Any]:
    where = [who.owns(t.sites)]
    if name is not None:
        where.append(t.sites.c.name == name)
    total = count(conn, t.sites, where)
    result = conn.execute(_select().where(*where).order_by(t.sites.c.id).limit(limit).offset(offset))
    return rows.page(total, rows.dicts(rows.SITE_KEYS, result))


def update(conn: Connection, who: Principal, site_id: int, body: SiteUpdate) -> dict[str, Any]:
    ensure_owned(conn, t.sites, site_id, who, "site")
    values = body.model_dump(exclude_unset=True)
    if values.get("name") is not None:
        _check_name_free(conn, who, values["name"], except_id=site_id)
    for key in ("name", "path", "hostname", "settings_summary"):
        if key in values and values[key] is None:
            values.pop(key)
    if values.get("last_heartbeat") is not None:
        values["last_heartbeat"] = to_naive_utc(values["last_heartbeat"])
    if values:
        conn.execute(t.sites.update().where(t.sites.c.id == site_id).values(**values))
    return get(conn, who, site_id)


def delete(conn: Connection, who: Principal, site_id: int) -> None:
    who.require_account("delete sites")
    ensure_owned(conn, t.sites, site_id, who, "site")
    purge.jobs_where(conn, t.jobs.c.site_id == site_id)
    # Foreign keys cascade to apps, batch jobs and sessions.
    conn.execute(t.sites.delete().where(t.sites.c.id == site_id))
