"""Schema revisions: what the database has, what this code knows, and migrating.

The server refuses to start on a schema it does not know exactly (older or newer)
and says which command fixes it. A brand-new empty database is migrated on first
start, so ``tolu server up`` just works on a laptop.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, inspect

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


class SchemaError(RuntimeError):
    """The database schema does not match this version of tolu (fatal at startup)."""


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()
    assert head is not None, "no migrations packaged"
    return head


def known_revisions() -> set[str]:
    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    return {rev.revision for rev in script.walk_revisions()}


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def is_empty(engine: Engine) -> bool:
    names = set(inspect(engine).get_table_names())
    return not (names - {"alembic_version"})


def upgrade(engine: Engine, revision: str = "head") -> None:
    _run(engine, "upgrade", revision)


def downgrade(engine: Engine, revision: str = "-1") -> None:
    _run(engine, "downgrade", revision)


def _run(engine: Engine, what: str, revision: str) -> None:
    cfg = alembic_config(engine.url.render_as_string(hide_password=False))
    with engine.connect() as conn:
        cfg.attributes["connection"] = conn
        if what == "upgrade":
            command.upgrade(cfg, revision)
        else:
            command.downgrade(cfg, revision)
        conn.commit()


def ensure_current(engine: Engine, *, migrate: bool = False) -> str:
    """Make sure the schema is at head and return the revision; raise SchemaError if not.

    ``migrate`` upgrades an older schema; an empty database is always migrated.
    """
    head = head_revision()
    current = current_revision(engine)
    if current == head:
        return head
    hint = "run `tolu server migrate` (same --data-dir / --database-url) first"
    if current is not None and current not in known_revisions():
        raise SchemaError(
            f"database schema revision {current} is newer than this tolu knows (head {head}); "
            "upgrade tolu, or downgrade the database with `tolu server migrate --revision <rev>` "
            "using the newer tolu"
        )
    if migrate or (current is None and is_empty(engine)):
        upgrade(engine)
        return head
    if current is None:
        raise SchemaError(f"database has tables but no tolu schema revision; {hint}")
    raise SchemaError(f"database schema is at revision {current}, this tolu needs {head}; {hint}")


def is_ancestor(target: str, current: str | None) -> bool:
    """True when revision ``target`` lies strictly below ``current`` (reaching it is a downgrade)."""
    if current is None or target in ("head", "heads") or target == current:
        return False
    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    try:
        below = {rev.revision for rev in script.iterate_revisions(current, "base")}
    except Exception:
        return False
    return target in below
