"""Apps: what a job runs (a command template or a serialized Python function)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, select

from runner.models import AppCreate, AppKind, AppUpdate
from runner.server import rows
from runner.server import tables as t
from runner.server.auth.principal import Principal
from runner.server.db import utcnow
from runner.server.errors import Conflict, Invalid, NotFound
from runner.server.services import purge
from runner.server.services.common import count, ensure_owned


def get(conn: Connection, who: Principal, app_id: int) -> dict[str, Any]:
    row = conn.execute(select(*rows.APP_COLUMNS).where(t.apps.c.id == app_id, who.owns(t.apps))).first()
    if row is None:
        raise NotFound(f"app {app_id} not found")
    return rows.one(rows.APP_KEYS, row)


def _check_kind(kind: AppKind, command_template: str | None, serialized_function: str | None) -> None:
    if kind is AppKind.SHELL and not command_template:
        raise Invalid.at(["body", "command_template"], "a shell app needs a command_template", "missing")
    if kind is AppKind.PYTHON and not serialized_function:
        raise Invalid.at(
            ["body", "serialized_function"], "a python app needs a serialized_function", "missing"
        )


def create(conn: Connection, who: Principal, body: AppCreate) -> dict[str, Any]:
    ensure_owned(conn, t.sites, body.site_id, who, "site")
    _check_kind(body.kind, body.command_template, body.serialized_function)
    dup = conn.execute(
        select(t.apps.c.id).where(t.apps.c.site_id == body.site_id, t.apps.c.name == body.name)
    ).scalar()
    if dup is not None:
        raise Conflict(f"site {body.site_id} already has an app named {body.name!r} (app {dup})")
    now = utcnow()
    values = body.model_dump(mode="json")
    app_id = conn.execute(
        t.apps.insert().values(owner_id=who.user_id, created_at=now, updated_at=now, **values)
    ).inserted_primary_key[0]  # type: ignore[index]
    return get(conn, who, app_id)


def filter(
    conn: Connection, who: Principal, *, site_id: int | None, name: str | None, limit: int, offset: int
) -> dict[str, Any]:
    where = [who.owns(t.apps)]
    if site_id is not None:
        where.append(t.apps.c.site_id == site_id)
    if name is not None:
        where.append(t.apps.c.name == name)
    total = count(conn, t.apps, where)
    result = conn.execute(
        select(*rows.APP_COLUMNS).where(*where).order_by(t.apps.c.id).limit(limit).offset(offset)
    )
    return rows.page(total, rows.dicts(rows.APP_KEYS, result))


def update(conn: Connection, who: Principal, app_id: int, body: AppUpdate) -> dict[str, Any]:
    current = get(conn, who, app_id)
    values = {k: v for k, v in body.model_dump(mode="json", exclude_unset=True).items() if v is not None}
    merged = {**current, **values}
    _check_kind(AppKind(merged["kind"]), merged["command_template"], merged["serialized_function"])
    if values:
        conn.execute(t.apps.update().where(t.apps.c.id == app_id).values(updated_at=utcnow(), **values))
    return get(conn, who, app_id)


def delete(conn: Connection, who: Principal, app_id: int) -> None:
    ensure_owned(conn, t.apps, app_id, who, "app")
    purge.jobs_where(conn, t.jobs.c.app_id == app_id)
    conn.execute(t.apps.delete().where(t.apps.c.id == app_id))
