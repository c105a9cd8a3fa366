"""The database's indexes, checked against the ones the schema declares (``tolu server indexes``).

``tables.py`` declares every index and unique constraint, and the migrations must build
exactly those (suites/server/test_migrations.py). A database can still drift: an index
dropped or added by hand, a migration applied half-way, a restore from another version.
``check`` reflects the live database (SQLite or PostgreSQL) and compares, per table:
name, columns in order, uniqueness and the partial-index predicate.

On PostgreSQL each index also reports its size and how often it was scanned since the
statistics were reset (``pg_stat_user_indexes``): an index that is never scanned costs an
entry per inserted row for nothing.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, Index, MetaData, UniqueConstraint, inspect, text

from runner.server import tables as t


@dataclass(frozen=True)
class IndexInfo:
    """One index (or unique constraint) of one table."""

    table: str
    name: str
    columns: tuple[str, ...]
    unique: bool
    #: the partial-index predicate, normalized ("" when the index covers every row)
    where: str = ""

    def shape(self) -> tuple[tuple[str, ...], bool, str]:
        return self.columns, self.unique, self.where


@dataclass(frozen=True)
class IndexStatus:
    """An index as declared and as found; ``status``: ok, missing, extra or differs."""

    table: str
    name: str
    status: str
    declared: IndexInfo | None
    found: IndexInfo | None
    #: PostgreSQL only: bytes on disk and index scans since the statistics were reset.
    size_bytes: int | None = None
    scans: int | None = None

    @property
    def info(self) -> IndexInfo:
        shown = self.found or self.declared
        assert shown is not None
        return shown

    def difference(self) -> str:
        """What differs, for a person: ``columns (a, b) in the database, (a) declared``."""
        if self.status != "differs" or self.declared is None or self.found is None:
            return ""
        d, f = self.declared, self.found
        parts = []
        if d.columns != f.columns:
            parts.append(
                f"columns ({', '.join(f.columns)}) in the database, ({', '.join(d.columns)}) declared"
            )
        if d.unique != f.unique:
            parts.append(f"{'unique' if f.unique else 'not unique'} in the database")
        if d.where != f.where:
            parts.append(f"WHERE {f.where or '-'} in the database, WHERE {d.where or '-'} declared")
        return "; ".join(parts)


#: the type casts PostgreSQL writes into a stored predicate (``'a'::character varying``)
_CAST = re.compile(r"::(?:character varying|double precision|[a-z_]+)(?:\[\])?")
#: PostgreSQL stores ``state IN ('a', 'b')`` as ``state = ANY (ARRAY['a', 'b'])``
_ANY_ARRAY = re.compile(r"= any array\[([^\]]*)\]")


def normalize_where(clause: Any) -> str:
    """A partial index's predicate in a form both databases' spellings reach.

    ``(session_id IS NOT NULL)`` and ``session_id is not null`` compare equal, and so
    do SQLite's ``state IN ('a', 'b')`` and PostgreSQL's stored
    ``((state)::text = ANY ((ARRAY['a'::character varying, ...])::text[]))``: casts and
    parentheses are dropped (our predicates are conjunctions, where they carry no
    meaning) and ``= ANY (ARRAY[...])`` reads as ``IN``.
    """
    if clause is None:
        return ""
    sql = re.sub(r"\s+", " ", str(clause)).lower()
    sql = _CAST.sub("", sql)
    sql = re.sub(r"\s+", " ", sql.replace("(", " ").replace(")", " ")).strip()
    return _ANY_ARRAY.sub(r"in \1", sql)


def declared(metadata: MetaData = t.metadata, dialect: str = "sqlite") -> list[IndexInfo]:
    """The indexes and unique constraints ``tables.py`` declares (named by its conventions)."""
    out: list[IndexInfo] = []
    for table in metadata.sorted_tables:
        for index in table.indexes:
            out.append(_declared_index(table.name, index, dialect))
        for constraint in table.constraints:
            if isinstance(constraint, UniqueConstraint):
                cols = tuple(c.name for c in constraint.columns)
                out.append(IndexInfo(table.name, str(constraint.name), cols, True))
        for column in table.columns:
            if column.unique:  # Column(..., unique=True): a unique constraint named by convention
                out.append(IndexInfo(table.name, f"uq_{table.name}_{column.name}", (column.name,), True))
    return out


def _declared_index(table: str, index: Index, dialect: str) -> IndexInfo:
    where = index.dialect_options[dialect].get("where") if dialect in ("sqlite", "postgresql") else None
    cols = tuple(c.name for c in index.columns)
    return IndexInfo(table, str(index.name), cols, bool(index.unique), normalize_where(where))


def found(conn: Connection, tables: Sequence[str]) -> list[IndexInfo]:
    """The indexes and unique constraints of ``tables`` in the live database."""
    insp = inspect(conn)
    dialect = conn.dialect.name
    existing = set(insp.get_table_names())
    out: list[IndexInfo] = []
    for table in tables:
        if table not in existing:
            continue
        constraint_names = set()
        for uc in insp.get_unique_constraints(table):
            name = uc.get("name") or f"(unnamed unique on {', '.join(uc['column_names'])})"
            constraint_names.add(name)
            out.append(IndexInfo(table, name, tuple(uc["column_names"]), True))
        for ix in insp.get_indexes(table):
            name = str(ix.get("name"))
            if name in constraint_names or ix.get("duplicates_constraint"):
                continue  # PostgreSQL lists the index behind a unique constraint again
            where = (ix.get("dialect_options") or {}).get(f"{dialect}_where")
            cols = tuple(str(c) for c in ix["column_names"])
            out.append(IndexInfo(table, name, cols, bool(ix.get("unique")), normalize_where(where)))
    return out


def check(engine: Engine, metadata: MetaData = t.metadata) -> list[IndexStatus]:
    """Every declared and every found index, with its status, by table and name."""
    dialect = engine.dialect.name
    want = {(i.table, i.name): i for i in declared(metadata, dialect)}
    with engine.connect() as conn:
        have = {(i.table, i.name): i for i in found(conn, [tb.name for tb in metadata.sorted_tables])}
        stats = _pg_stats(conn) if dialect == "postgresql" else {}
    out = []
    for key in sorted(want.keys() | have.keys()):
        d, f = want.get(key), have.get(key)
        if d is None:
            status = "extra"
        elif f is None:
            status = "missing"
        else:
            status = "ok" if d.shape() == f.shape() else "differs"
        size, scans = stats.get(key[1], (None, None))
        out.append(IndexStatus(key[0], key[1], status, d, f, size, scans))
    return out


def _pg_stats(conn: Connection) -> dict[str, tuple[int, int]]:
    rows = conn.execute(
        text(
            "SELECT indexrelname, pg_relation_size(indexrelid), idx_scan FROM pg_stat_user_indexes "
            "WHERE schemaname = current_schema()"
        )
    )
    return {str(name): (int(size), int(scans)) for name, size, scans in rows}
