"""Rows out: the columns each answer model needs and turning rows into plain dicts.

Answers are serialized by orjson straight from these dicts (see errors.json_response);
building pydantic models per row would cost more than the query on the hot path.
The reply models in runner/models.py stay the documented schema (OpenAPI) and are
what the tests and the client validate against.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import ColumnElement, Connection

from runner import models
from runner.server import bulk
from runner.server import tables as t


def _cols(table: Any, model: type[models.Reply], skip: Sequence[str] = ()) -> list[Any]:
    return [table.c[name] for name in model.model_fields if name not in skip]


def _keys(columns: Sequence[Any]) -> list[str]:
    # Column keys are SQLAlchemy ``quoted_name`` (a str subclass); orjson wants plain str.
    return [c.key.encode().decode() for c in columns]


JOB_COLUMNS: list[ColumnElement[Any]] = _cols(t.jobs, models.Job)
JOB_KEYS = _keys(JOB_COLUMNS)
APP_COLUMNS = _cols(t.apps, models.App)
APP_KEYS = _keys(APP_COLUMNS)
BATCH_JOB_COLUMNS = _cols(t.batch_jobs, models.BatchJob)
BATCH_JOB_KEYS = _keys(BATCH_JOB_COLUMNS)
SESSION_COLUMNS = _cols(t.sessions, models.Session)
SESSION_KEYS = _keys(SESSION_COLUMNS)
TRANSFER_COLUMNS = _cols(t.transfer_items, models.TransferItem)
TRANSFER_KEYS = _keys(TRANSFER_COLUMNS)
EVENT_COLUMNS = _cols(t.events, models.Event)
EVENT_KEYS = _keys(EVENT_COLUMNS)
SITE_COLUMNS = [*_cols(t.sites, models.Site, skip=("owner",)), t.users.c.username.label("owner")]
SITE_KEYS = _keys(SITE_COLUMNS)


def dicts(keys: Sequence[str], rows: Iterable[Sequence[Any]]) -> list[dict[str, Any]]:
    return [dict(zip(keys, row, strict=True)) for row in rows]


def one(keys: Sequence[str], row: Sequence[Any]) -> dict[str, Any]:
    return dict(zip(keys, row, strict=True))


def page(count: int, results: list[Any]) -> dict[str, Any]:
    return {"count": count, "results": results}


class RawShape:
    """Fast reads for answers: JSON columns as text embedded verbatim (orjson.Fragment)."""

    def __init__(self, table: Any, keys: Sequence[str]) -> None:
        self.keys = list(keys)
        self._cols = {flag: bulk.raw_columns(table, keys, flag) for flag in (True, False)}
        self._conv = {flag: bulk.row_converters(table, keys, flag) for flag in (True, False)}

        self._json = {flag: bulk.json_object(table, keys, flag) for flag in (True, False)}

    def columns(self, conn: Connection) -> list[Any]:
        return self._cols[bulk.is_sqlite(conn)]

    def dicts(self, conn: Connection, result: Iterable[Sequence[Any]]) -> list[dict[str, Any]]:
        return bulk.raw_dicts(self.keys, self._conv[bulk.is_sqlite(conn)], result)

    def json(self, conn: Connection) -> Any:
        """The whole row as one JSON text column (see bulk.json_object)."""
        return self.json_for(bulk.is_sqlite(conn))

    def json_for(self, sqlite: bool) -> Any:
        """``json`` for a statement built before any connection (SQLite's or not)."""
        return self._json[sqlite]


JOBS = RawShape(t.jobs, JOB_KEYS)
EVENTS = RawShape(t.events, EVENT_KEYS)
