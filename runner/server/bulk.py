"""The hot path's database primitives, below SQLAlchemy's per-row processing.

Bulk requests carry up to 10,000 jobs and write three to four Events per job;
SQLAlchemy's per-parameter type processing would cost more than the database.
Here rows go to the driver as ready tuples (JSON already encoded, timestamps in
the column's stored form): ``executemany`` on SQLite, ``COPY`` on PostgreSQL.
Reads that feed JSON answers skip decoding: JSON columns come back as text and
are embedded as ``orjson.Fragment``s.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    ColumnElement,
    Connection,
    DateTime,
    String,
    Text,
    any_,
    bindparam,
    cast,
    column,
    func,
    literal_column,
    select,
    type_coerce,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.visitors import InternalTraversal
from sqlalchemy.types import TypeDecorator, TypeEngine

SQLITE_TS = "%Y-%m-%d %H:%M:%S.%f"


def is_sqlite(conn: Connection) -> bool:
    return conn.dialect.name == "sqlite"


def dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def ts(conn: Connection, value: datetime | None) -> Any:
    """A naive-UTC datetime in the form the driver stores for a DateTime column.

    SQLite's is SQLITE_TS, which ``isoformat`` writes a quarter as slowly as
    ``strftime`` (0.4 µs against 1.5; a job's RUNNING and outcome reports pass here).
    """
    if value is None or not is_sqlite(conn):
        return value
    if value.tzinfo is not None:
        value = value.replace(tzinfo=None)
    return value.isoformat(" ", "microseconds")


class _IdList(TypeDecorator[list[int]]):
    """A list of ids as one bound value: JSON text for SQLite's ``json_each``, an array
    for PostgreSQL's ``ANY``."""

    impl = String
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        return dialect.type_descriptor(String() if dialect.name == "sqlite" else ARRAY(BigInteger()))

    def process_bind_param(self, value: list[int] | None, dialect: Dialect) -> Any:
        return dumps(value) if dialect.name == "sqlite" and value is not None else value


class IdsIn(ColumnElement[bool]):
    """``col IN ids`` with ONE bound parameter, however many ids (no 5,000-name IN list).

    SQLite: ``col IN (SELECT value FROM json_each(:ids))``; PostgreSQL: ``col = ANY(:ids)``.
    The ids are a bound value, not part of the statement, so a statement with this in it
    is compiled once and then taken from SQLAlchemy's cache like any other (``_traverse_
    internals``: what the cache key is made of); compiled every time, a launcher report's
    UPDATE cost the server 7 % of its CPU.
    """

    _traverse_internals = [
        ("col", InternalTraversal.dp_clauseelement),
        ("ids", InternalTraversal.dp_clauseelement),
    ]
    type = Boolean()
    _is_implicitly_boolean = True

    def __init__(self, col: ColumnElement[Any], ids: Sequence[int] | None, key: str | None = None) -> None:
        self.col = col
        if ids is None:  # a statement built once: the ids come with each execution
            self.ids = bindparam(key, type_=_IdList())
        else:
            self.ids = bindparam(None, [int(i) for i in ids], type_=_IdList(), unique=True)


def ids_in(col: ColumnElement[Any], ids: Sequence[int]) -> ColumnElement[bool]:
    return IdsIn(col, ids)


def ids_in_param(col: ColumnElement[Any], key: str) -> ColumnElement[bool]:
    """``ids_in`` for a statement built once and run many times: the ids are the
    execution's parameter ``key`` (a list of ints)."""
    return IdsIn(col, None, key)


@compiles(IdsIn, "sqlite")
def _compile_ids_in_sqlite(element: IdsIn, compiler: Any, **kw: Any) -> str:
    sub: Any = select(column("value")).select_from(func.json_each(element.ids))
    return str(compiler.process(element.col.in_(sub), **kw))


@compiles(IdsIn)
def _compile_ids_in_default(element: IdsIn, compiler: Any, **kw: Any) -> str:
    return str(compiler.process(element.col == any_(element.ids), **kw))


def raw_columns(table: Any, names: Sequence[str], sqlite: bool) -> list[ColumnElement[Any]]:
    """Columns of ``table`` for a JSON answer: JSON as text, SQLite timestamps as text."""
    out: list[ColumnElement[Any]] = []
    for name in names:
        col = table.c[name]
        if isinstance(col.type, JSON):
            out.append((type_coerce(col, Text) if sqlite else cast(col, Text)).label(name))
        elif sqlite and isinstance(col.type, DateTime):
            out.append(type_coerce(col, String).label(name))
        else:
            out.append(col)
    return out


def row_converters(table: Any, names: Sequence[str], sqlite: bool) -> list[tuple[int, Any]]:
    """(position, converter) for the raw columns that need one before orjson."""
    conv: list[tuple[int, Any]] = []
    for i, name in enumerate(names):
        col = table.c[name]
        if isinstance(col.type, JSON):
            conv.append((i, _fragment))
        elif sqlite and isinstance(col.type, DateTime):
            conv.append((i, _sqlite_ts_to_iso))
    return conv


def _fragment(value: str | None) -> Any:
    return None if value is None else orjson.Fragment(value)


def _sqlite_ts_to_iso(value: str | None) -> str | None:
    # "2026-01-02 03:04:05.678901" (naive UTC) -> "2026-01-02T03:04:05.678901Z"
    if value is None:
        return None
    return f"{value[:10]}T{value[11:]}Z"


def raw_dicts(
    names: Sequence[str], converters: Sequence[tuple[int, Any]], rows: Iterable[Sequence[Any]]
) -> list[dict[str, Any]]:
    out = []
    for row in rows:
        values = list(row)
        for i, fn in converters:
            values[i] = fn(values[i])
        out.append(dict(zip(names, values, strict=True)))
    return out


def insert_rows(conn: Connection, table: Any, names: Sequence[str], rows: list[tuple[Any, ...]]) -> None:
    """Insert ready tuples (JSON as str; timestamps via ``ts``) into ``table``."""
    if not rows:
        return
    cols = ", ".join(names)
    if is_sqlite(conn):
        marks = ", ".join("?" for _ in names)
        conn.exec_driver_sql(f"INSERT INTO {table.name} ({cols}) VALUES ({marks})", rows)
        return
    raw = conn.connection.driver_connection
    assert raw is not None
    with raw.cursor() as cur, cur.copy(f"COPY {table.name} ({cols}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)


def json_object(table: Any, names: Sequence[str], sqlite: bool) -> ColumnElement[str]:
    """One column holding each row as a JSON object text, built by the database.

    Answers made of these need no per-field work in Python: the texts are embedded
    as ``orjson.Fragment``s. Timestamps become ISO 8601 with ``Z`` (naive UTC stored).
    """
    args: list[Any] = []
    for name in names:
        col = table.c[name]
        args.append(literal_column(f"'{name}'"))
        if isinstance(col.type, JSON):
            args.append(func.json(col) if sqlite else col)
        elif isinstance(col.type, DateTime):
            if sqlite:
                args.append(func.replace(type_coerce(col, String), " ", "T").concat("Z"))
            else:
                args.append(func.to_char(col, literal_column('\'YYYY-MM-DD"T"HH24:MI:SS.US"Z"\'')))
        else:
            args.append(col)
    if sqlite:
        return func.json_object(*args, type_=Text)
    return cast(func.json_build_object(*args), Text)


def fragments(texts: Iterable[str]) -> list[Any]:
    return [orjson.Fragment(text) for text in texts]


class InSelect(ColumnElement[bool]):
    """``col IN (SELECT ...)`` that no planner statistics can turn quadratic.

    SQLite: the plain ``IN (subquery)`` (it builds the list once, then probes).
    PostgreSQL: ``col = ANY(ARRAY(subquery))``: the subquery runs once, and the
    outer table is probed with the array (index or hashed filter), never joined.
    As a semi-join, stale statistics ("1 row") after a bulk insert made the planner
    pick a nested loop that scanned the tag index once per job: minutes per page.
    """

    _traverse_internals = [
        ("col", InternalTraversal.dp_clauseelement),
        ("query", InternalTraversal.dp_clauseelement),
    ]
    type = Boolean()
    _is_implicitly_boolean = True

    def __init__(self, col: ColumnElement[Any], query: Any) -> None:
        self.col = col
        self.query = query


def in_select(col: ColumnElement[Any], query: Any) -> ColumnElement[bool]:
    return InSelect(col, query)


@compiles(InSelect, "sqlite")
def _compile_in_select_sqlite(element: InSelect, compiler: Any, **kw: Any) -> str:
    return str(compiler.process(element.col.in_(element.query), **kw))


@compiles(InSelect)
def _compile_in_select_default(element: InSelect, compiler: Any, **kw: Any) -> str:
    col = compiler.process(element.col, **kw)
    sub = compiler.process(element.query.scalar_subquery(), **kw)
    # sub is "(SELECT ...)"; ARRAY(SELECT ...) takes the bare query.
    return f"{col} = ANY(ARRAY{sub})"
