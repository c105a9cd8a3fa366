"""Database engines and transactions for SQLite and PostgreSQL.

SQLite: one file, WAL journal, ``busy_timeout``; every write transaction starts
with ``BEGIN IMMEDIATE`` (it takes the write lock up front, so two writers never
dead-lock upgrading a read lock) and, inside one server process, writers queue on
a lock instead of spinning in SQLite's busy handler.
PostgreSQL (psycopg 3): READ COMMITTED; acquisition uses ``FOR UPDATE SKIP LOCKED``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import Connection, Engine, TextClause, create_engine, event, func, select, text
from sqlalchemy.pool import QueuePool

from runner.server import tables as t

SQLITE_FILE = "tolu.db"
BUSY_TIMEOUT_MS = 30_000
#: SQLite's page cache per connection, KiB.
SQLITE_CACHE_KIB = 4_096


#: bulk-inserted jobs after which the server refreshes planner statistics (``maintain``);
#: a DAG run that creates this many refreshes them in its own transaction (services/dags.py).
ANALYZE_AFTER_ROWS = 5_000
#: ... at once, when they are this part of the table as last analyzed (``after_bulk_insert``).
STALE_FRACTION = 0.25
#: PostgreSQL's statistics target for those refreshes: a sample of 300 times this many rows
#: (its default, 100, samples 30,000). They are there to give the planner the table's
#: size and its few states, sites and tags, not fine histograms: on a table of 30,000
#: jobs this takes 60 ms where the default took 500 ms, inside the bulk create that
#: asked for it. Autovacuum's own ANALYZE, later, uses the default again.
QUICK_STATISTICS_TARGET = 10


def refresh_statistics(conn: Connection, *tables: str) -> None:
    """PostgreSQL: ``ANALYZE tables`` in ``conn``'s transaction (its own new rows count),
    on a small sample (QUICK_STATISTICS_TARGET; SET LOCAL: only this transaction's)."""
    conn.exec_driver_sql(f"SET LOCAL default_statistics_target = {QUICK_STATISTICS_TARGET}")
    conn.exec_driver_sql(f"ANALYZE {', '.join(tables)}")


def sqlite_url(data_dir: Path) -> str:
    return f"sqlite:///{Path(data_dir).resolve() / SQLITE_FILE}"


def _json_dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def utcnow() -> datetime:
    """Now as naive UTC, the form every timestamp column holds."""
    return datetime.now(UTC).replace(tzinfo=None)


def to_naive_utc(value: datetime) -> datetime:
    """``value`` in UTC without its zone (naive values are taken as UTC already)."""
    offset = value.utcoffset()
    if offset is None:
        return value
    if offset:
        value -= offset
    # made anew rather than ``replace(tzinfo=None)``: 0.44 µs against 1.04 (every report
    # of a launcher passes here, two per job)
    v = value
    return datetime(v.year, v.month, v.day, v.hour, v.minute, v.second, v.microsecond)


def make_engine(url: str) -> Engine:
    """An engine for ``url`` with tolu's connection settings (see module doc)."""
    if url.startswith("sqlite"):
        engine = create_engine(
            url,
            json_serializer=_json_dumps,
            json_deserializer=orjson.loads,
            poolclass=QueuePool,
            pool_size=8,
            max_overflow=8,
            # the most recently returned connection goes out first: a few connections
            # carry the load and the others' page caches (below) stay small
            pool_use_lifo=True,
            connect_args={"check_same_thread": False, "timeout": BUSY_TIMEOUT_MS / 1000},
        )

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn: Any, _record: Any) -> None:
            # Let SQLAlchemy's "begin" event (below) emit BEGIN, so we choose its kind.
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            # The page cache is per connection, and pooled connections keep theirs: at
            # 64 MiB each a 100,000-job database grew the server past 190 MiB, at 16 MiB
            # a 100,000-job serial run still took it from 176 to 224 MiB, step by step as
            # connections filled theirs (178 at 4 MiB). A big cache buys little: in WAL
            # mode a connection drops its cache whenever another one wrote, and the
            # operating system caches the file anyway.
            cur.execute(f"PRAGMA cache_size=-{SQLITE_CACHE_KIB}")
            cur.execute("PRAGMA temp_store=MEMORY")
            cur.close()

        @event.listens_for(engine, "begin")
        def _on_begin(conn: Connection) -> None:
            mode = conn.get_execution_options().get("tolu_begin", "DEFERRED")
            conn.exec_driver_sql(f"BEGIN {mode}")

        return engine
    return create_engine(
        url,
        json_serializer=_json_dumps,
        json_deserializer=orjson.loads,
        pool_size=8,
        max_overflow=8,
        pool_pre_ping=True,
        connect_args={"options": "-c timezone=utc"},
    )


def database_kind(url: str) -> str:
    return "sqlite" if url.startswith("sqlite") else "postgresql"


class Database:
    """The engine plus the two kinds of transaction the services use."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.kind = database_kind(url)
        self.engine = make_engine(url)
        self._write_lock = threading.Lock() if self.kind == "sqlite" else None
        #: rows bulk-inserted and committed since the last ANALYZE began (see ``maintain``).
        self.inserted_since_analyze = 0
        #: jobs in the table when statistics were last refreshed by this process
        self.analyzed_rows = 0.0
        self._analyzing = threading.Lock()
        self._counting = threading.Lock()
        #: per thread: rows noted by the write transaction it is in, counted once it commits
        self._tx = threading.local()
        #: PostgreSQL: each table's id sequence as a statement that takes ``n`` of its values
        self._take_ids: dict[str, TextClause] = {}

    @property
    def is_sqlite(self) -> bool:
        return self.kind == "sqlite"

    @contextmanager
    def read(self) -> Iterator[Connection]:
        with self.engine.connect() as conn, conn.begin():
            yield conn

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """A write transaction: commits on success, rolls back on any exception."""
        outer = getattr(self._tx, "inserted", None)
        self._tx.inserted = 0
        try:
            with self._transaction() as conn:
                yield conn
            # committed: what it inserted is in the table for an ANALYZE to see
            self._count_inserted(self._tx.inserted)
        finally:
            self._tx.inserted = outer

    @contextmanager
    def _transaction(self) -> Iterator[Connection]:
        if self._write_lock is None:
            with self.engine.connect() as conn, conn.begin():
                yield conn
            return
        with self._write_lock, self.engine.connect() as conn:
            conn = conn.execution_options(tolu_begin="IMMEDIATE")
            with conn.begin():
                yield conn

    def allocate_ids(self, conn: Connection, table: Any, n: int) -> list[int]:
        """Reserve ``n`` new primary keys of ``table`` inside the write transaction ``conn``.

        Knowing ids before inserting lets one request insert a whole DAG (children
        name parents by id) with one executemany per table.
        """
        if n == 0:
            return []
        if self.is_sqlite:
            # Inside BEGIN IMMEDIATE nobody else can insert; AUTOINCREMENT's counter
            # keeps ids of deleted rows from coming back.
            seq = conn.execute(
                text("SELECT seq FROM sqlite_sequence WHERE name = :name"), {"name": table.name}
            ).scalar()
            top = conn.execute(select(func.max(table.c.id))).scalar()
            start = max(seq or 0, top or 0) + 1
            return list(range(start, start + n))
        take = self._take_ids.get(table.name)
        if take is None:
            # The sequence named in the statement as a constant: asked for per row
            # (``nextval(pg_get_serial_sequence(...))``) it cost 7 µs of a 1 µs nextval.
            seq = conn.execute(text("SELECT pg_get_serial_sequence(:t, 'id')"), {"t": table.name}).scalar()
            quoted = str(seq).replace("'", "''")
            take = self._take_ids[table.name] = text(
                f"SELECT nextval('{quoted}'::regclass) FROM generate_series(1, :n)"
            )
        return sorted(int(r) for r in conn.execute(take, {"n": n}).scalars())

    def note_inserted(self, n: int) -> None:
        """``n`` rows were bulk-inserted by the write transaction of this thread: they count
        towards the next refresh once it commits (an ANALYZE before that cannot see them)."""
        if getattr(self._tx, "inserted", None) is None:  # not inside ``write``: counted now
            self._count_inserted(n)
        else:
            self._tx.inserted += n

    def _count_inserted(self, n: int) -> None:
        if n:
            with self._counting:
                self.inserted_since_analyze += n

    def maintain(self, threshold: int = ANALYZE_AFTER_ROWS, *, wait: bool = False) -> bool:
        """Refresh planner statistics after large bulk inserts; returns whether it did.

        PostgreSQL's autovacuum gets there within a minute; until then the planner
        believes the tables are as small as they were. SQLite has none unless asked.
        The server calls this every few seconds (the session check), without waiting
        for a refresh already under way; ``after_bulk_insert`` waits for it, then
        refreshes again unless that one began after its rows were committed.
        """
        if self.inserted_since_analyze < threshold or not self._analyzing.acquire(blocking=wait):
            return False
        try:
            with self._counting:
                seen = self.inserted_since_analyze  # committed rows: the ANALYZE below sees them
            if seen < threshold:  # a refresh that began after they were committed covered them
                return False
            self._count_inserted(-seen)
            try:
                self._analyze()
            except BaseException:
                self._count_inserted(seen)  # not refreshed: they still count
                raise
            return True
        finally:
            self._analyzing.release()

    def _analyze(self) -> None:
        if self.is_sqlite:
            # Approximate statistics (analysis_limit) take milliseconds, and let
            # SQLite drive a selective tag filter from job_tags.
            with self.write() as conn:
                conn.exec_driver_sql("PRAGMA analysis_limit=2000")
                conn.exec_driver_sql("ANALYZE jobs")
                conn.exec_driver_sql("ANALYZE job_tags")
            return
        with self.engine.begin() as conn:
            refresh_statistics(conn, "jobs", "job_tags")
            rows = conn.exec_driver_sql(
                "SELECT reltuples FROM pg_class WHERE oid = 'jobs'::regclass"
            ).scalar()
        self.analyzed_rows = max(0.0, float(rows or 0))

    def after_bulk_insert(self) -> bool:
        """Right after a bulk create committed: refresh PostgreSQL's statistics now when the
        jobs inserted since the last refresh are a large part of the table (the planner's
        picture of it is off by that factor). The next acquire comes within milliseconds:
        with the statistics of a table ten times smaller, PostgreSQL matched every free job
        against every job's tags (0.2 s for an acquire of 1,000 jobs among 3,000; see
        docs/performance.md). ANALYZE samples a bounded number of rows, so it is cheap on
        the small tables where this matters; a large table waits for ``maintain``."""
        if self.is_sqlite or self.inserted_since_analyze < STALE_FRACTION * self.analyzed_rows:
            return False
        return self.maintain(wait=True)

    def dispose(self) -> None:
        self.engine.dispose()


__all__ = ["Database", "database_kind", "make_engine", "sqlite_url", "t", "to_naive_utc", "utcnow"]
