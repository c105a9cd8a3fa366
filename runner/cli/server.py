"""``tolu server``: run, stop, migrate and inspect a tolu server.

The server keeps its data (SQLite file, signing key, log, pid file) in a data
directory: ``--data-dir``, else ``$TOLU_DATA_DIR``, else ``~/.local/share/tolu``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from runner.daemon import PidFile, stop

PID_FILE = "server.pid"

_data_dir_option = click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="server data directory [default: $TOLU_DATA_DIR or ~/.local/share/tolu]",
)
_database_option = click.option(
    "--database-url",
    default=None,
    envvar="TOLU_DATABASE_URL",
    help="e.g. postgresql+psycopg://user:pw@host/db [default: SQLite file in the data dir]",
)


def _data_dir(value: Path | None) -> Path:
    from runner.server.settings import default_data_dir

    return (value or default_data_dir()).expanduser().resolve()


_json_option = click.option("--json", "as_json", is_flag=True, help="print JSON instead of text")


def _print_json(data: object) -> None:
    import json

    click.echo(json.dumps(data, indent=2, default=str))


def _pid_file(data_dir: Path) -> PidFile:
    return PidFile(data_dir / PID_FILE)


@click.group()
def server() -> None:
    """Run the tolu server (FastAPI + SQLite or PostgreSQL).

    \b
    Examples:
      tolu server up --detach                  # SQLite in ~/.local/share/tolu, port 8000
      tolu server status
      tolu server down
      tolu server up --database-url postgresql+psycopg://tolu:tolu@127.0.0.1/tolu
      tolu server migrate                      # after upgrading tolu
    """


def _listen(host: str | None, port: int | None) -> tuple[str, int]:
    """``--host``/``--port``, else those of ``$TOLU_URL`` (so that the server and the commands
    that find it through the variable agree), else 127.0.0.1:8000."""
    import os
    from urllib.parse import urlsplit

    url = urlsplit(os.environ.get("TOLU_URL", ""))
    try:
        url_port = url.port
    except ValueError:
        url_port = None
    return host or url.hostname or "127.0.0.1", port if port is not None else url_port or 8000


@server.command()
@click.option("--host", default=None, help="address to listen on [default: $TOLU_URL's host, else 127.0.0.1]")
@click.option(
    "--port", default=None, type=int, help="port, 0: pick a free one [default: $TOLU_URL's port, else 8000]"
)
@_data_dir_option
@_database_option
@click.option("--detach", is_flag=True, help="run in the background; stop with `tolu server down`")
@click.option("--migrate", is_flag=True, help="upgrade an older database schema first")
@click.option(
    "--workers",
    default=1,
    show_default=True,
    type=click.IntRange(min=1),
    help="server processes sharing the port; more than 1 needs PostgreSQL (--database-url)",
)
@_json_option
def up(
    host: str | None,
    port: int | None,
    data_dir: Path | None,
    database_url: str | None,
    detach: bool,
    migrate: bool,
    workers: int,
    as_json: bool,
) -> None:
    """Start a server.

    In the foreground it logs to the terminal until Ctrl-C. With --detach it writes
    DATA_DIR/server.pid, logs to DATA_DIR/server.log and prints the URL.

    With --workers N (PostgreSQL only) N processes answer on the same port, each on
    a core of its own; stopping the server's PID stops them all.

    \b
    Examples:
      tolu server up --detach --port 8000
      tolu server up --detach --workers 4 --database-url postgresql+psycopg://tolu:tolu@127.0.0.1/tolu
    """
    host, port = _listen(host, port)
    directory = _data_dir(data_dir)
    directory.mkdir(parents=True, exist_ok=True)
    pid_file = _pid_file(directory)
    if pid_file.running():
        info = pid_file.read() or {}
        raise click.ClickException(
            f"a server is already running for {directory} at {info.get('url')} (pid {info.get('pid')}); "
            "stop it with `tolu server down`"
        )
    if not detach:
        from runner.server.__main__ import main

        argv = ["--host", host, "--port", str(port), "--data-dir", str(directory)]
        if database_url:
            argv += ["--database-url", database_url]
        if migrate:
            argv.append("--migrate")
        if workers > 1:
            argv += ["--workers", str(workers)]
        sys.exit(main(argv))

    from runner.server.process import ServerProcess, ServerStartError

    proc = ServerProcess(
        directory, host=host, port=port, database_url=database_url, migrate=migrate, workers=workers
    )
    try:
        proc.start(timeout=60)
    except ServerStartError as exc:
        last = [line for line in exc.log_tail.splitlines() if line.strip()]
        hint = last[-1] if last else "no output"
        raise click.ClickException(f"server did not start: {hint} (log: {exc.log_path})") from None
    pid = proc.detach()
    pid_file.write(pid, url=proc.url, log=str(proc.log_path))
    if as_json:
        _print_json({"url": proc.url, "pid": pid, "log": str(proc.log_path), "data_dir": str(directory)})
        return
    click.echo(f"tolu server running at {proc.url} (pid {pid})")
    click.echo(f"log: {proc.log_path}")
    click.echo("stop it with: tolu server down" + (f" --data-dir {directory}" if data_dir else ""))


@server.command()
@_data_dir_option
@click.option("--timeout", default=10.0, show_default=True, help="seconds before SIGKILL")
@_json_option
def down(data_dir: Path | None, timeout: float, as_json: bool) -> None:
    """Stop the server started with `up --detach` (by the PID in DATA_DIR/server.pid).

    \b
    Example:
      tolu server down --data-dir ./server-data
    """
    directory = _data_dir(data_dir)
    pid_file = _pid_file(directory)
    info = pid_file.read()
    if info is None:
        raise click.ClickException(f"no server.pid in {directory}: no detached server runs from there")
    proc = pid_file.process()
    if proc is None:
        pid_file.remove()
        if as_json:
            _print_json({"pid": info["pid"], "stopped": False})
            return
        click.echo(f"server (pid {info['pid']}) was not running; removed stale {pid_file.path}")
        return
    stop(proc, timeout=timeout)
    pid_file.remove(proc.pid)
    if as_json:
        _print_json({"pid": proc.pid, "stopped": True})
        return
    click.echo(f"stopped tolu server (pid {proc.pid})")


@server.command()
@_data_dir_option
@_json_option
def status(data_dir: Path | None, as_json: bool) -> None:
    """Say whether the detached server of DATA_DIR runs, and its health.

    \b
    Example:
      tolu server status
    """
    from runner.server.process import health as server_health

    directory = _data_dir(data_dir)
    pid_file = _pid_file(directory)
    info = pid_file.read()
    if info is None or pid_file.running() is None:
        raise click.ClickException(f"no tolu server running for {directory}")
    health = server_health(str(info.get("url")))
    if health is None:
        raise click.ClickException(
            f"server pid {info['pid']} runs but {info.get('url')}/health does not answer "
            f"(log: {info.get('log')})"
        )
    if as_json:
        _print_json({"url": info.get("url"), "pid": info["pid"], "log": info.get("log"), **health})
        return
    click.echo(
        f"running at {info.get('url')} (pid {info['pid']}): tolu {health.get('version')}, "
        f"{health.get('database')}, schema {health.get('schema_revision')}, log {info.get('log')}"
    )


@server.command()
@_data_dir_option
@_database_option
@click.option(
    "--revision",
    default="head",
    show_default=True,
    help="target: head, a revision id, -1 (one back), base (empty)",
)
@_json_option
def migrate(data_dir: Path | None, database_url: str | None, revision: str, as_json: bool) -> None:
    """Upgrade (or downgrade) the database schema.

    \b
    Examples:
      tolu server migrate                         # to the newest schema
      tolu server migrate --revision -1           # one step back
      tolu server migrate --database-url postgresql+psycopg://tolu:tolu@127.0.0.1/tolu
    """
    from runner.server import schema
    from runner.server.db import Database, sqlite_url

    directory = _data_dir(data_dir)
    directory.mkdir(parents=True, exist_ok=True)
    db = Database(database_url or sqlite_url(directory))
    try:
        before = schema.current_revision(db.engine)
        if revision.startswith("-") or revision == "base" or schema.is_ancestor(revision, before):
            schema.downgrade(db.engine, revision)
        else:
            schema.upgrade(db.engine, revision)
        after = schema.current_revision(db.engine)
    except Exception as exc:  # alembic raises several kinds; all are one line for the user
        raise click.ClickException(f"migration failed: {exc}") from None
    finally:
        db.dispose()
    if as_json:
        _print_json({"database": db.kind, "before": before, "after": after})
        return
    click.echo(f"{db.kind} schema: {before or 'empty'} -> {after or 'empty'}")


@server.command(name="rotate-key")
@_data_dir_option
@click.option("--drop-old", is_flag=True, help="forget the older keys too (a leaked key); restart the server")
def rotate_key(data_dir: Path | None, drop_old: bool) -> None:
    """Replace the key that signs access tokens now (it also happens by itself every
    TOLU_KEY_ROTATION_DAYS).

    Tokens signed with the previous keys stay valid until they expire, unless --drop-old:
    then, once the server restarts, they are refused and clients get new ones on their
    own (logins and tokens are not affected). A running server signs with the new key from
    its next start and verifies tokens signed with it at once.
    """
    from datetime import timedelta

    from runner.server.auth.keys import KEY_FILE, KeyRing

    directory = _data_dir(data_dir)
    ring = KeyRing(directory, rotate_after=timedelta(days=36500)).load()
    kid = ring.rotate(keep_old=not drop_old)
    click.echo(f"new signing key {kid} in {directory / KEY_FILE} (keeping {len(ring.kids()) - 1} older)")


@server.command()
@_data_dir_option
@_database_option
@click.option("--json", "as_json", is_flag=True, help="print the list as JSON")
def indexes(data_dir: Path | None, database_url: str | None, as_json: bool) -> None:
    """List the database's indexes and check them against the ones the schema declares.

    Each index of the tolu tables is shown with its columns, uniqueness and partial
    predicate (WHERE), and a status: ok, missing (declared, not in the database), extra
    (in the database, not declared) or differs. On PostgreSQL also its size and how
    often it was scanned. Exits 1 when any index is not ok, or the schema is not at the
    newest revision (then run `tolu server migrate`).

    \b
    Examples:
      tolu server indexes
      tolu server indexes --database-url postgresql+psycopg://tolu:tolu@127.0.0.1/tolu
    """
    from runner.cli._common import print_json, print_table
    from runner.server import indexes as ix
    from runner.server import schema
    from runner.server.db import Database, sqlite_url

    directory = _data_dir(data_dir)
    if database_url is None and not (directory / "tolu.db").exists():
        raise click.ClickException(
            f"no database in {directory} (tolu.db); name it with --data-dir or --database-url"
        )
    db = Database(database_url or sqlite_url(directory))
    try:
        revision, head = schema.current_revision(db.engine), schema.head_revision()
        statuses = ix.check(db.engine)
    except Exception as exc:  # the driver's errors (cannot connect, no such database) in one line
        raise click.ClickException(f"cannot read the indexes: {exc}") from None
    finally:
        db.dispose()
    if as_json:
        print_json(
            {
                "database": db.kind,
                "schema_revision": revision,
                "head_revision": head,
                "indexes": [
                    {
                        "table": s.table,
                        "name": s.name,
                        "status": s.status,
                        "columns": list(s.info.columns),
                        "unique": s.info.unique,
                        "where": s.info.where or None,
                        "difference": s.difference() or None,
                        "size_bytes": s.size_bytes,
                        "scans": s.scans,
                    }
                    for s in statuses
                ],
            }
        )
    else:
        columns = ["table", "index", "columns", "unique", "where", "status"]
        pg = db.kind == "postgresql"
        if pg:
            columns += ["size", "scans"]
        rows = []
        for s in statuses:
            row = [
                s.table,
                s.name,
                ", ".join(s.info.columns),
                "yes" if s.info.unique else "",
                s.info.where,
                s.status + (f": {s.difference()}" if s.status == "differs" else ""),
            ]
            if pg:
                row += [_size(s.size_bytes), "" if s.scans is None else str(s.scans)]
            rows.append(row)
        print_table(columns, rows, title=f"{db.kind} schema {revision or 'empty'} (newest: {head})")
    bad = [s for s in statuses if s.status != "ok"]
    if revision != head:
        click.echo(f"the schema is at {revision or 'empty'}, not {head}: run `tolu server migrate`", err=True)
    if bad:
        click.echo(f"{len(bad)} of {len(statuses)} indexes differ from the schema's declaration", err=True)
    if bad or revision != head:
        sys.exit(1)


def _size(n: int | None) -> str:
    if n is None:
        return ""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return str(n)
