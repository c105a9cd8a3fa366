"""``python -m runner.server``: run one server process (uvicorn) in the foreground."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from runner.roles import Role, announce
from runner.server.settings import ServerSettings, configure_logging


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m runner.server", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument(
        "--data-dir", type=Path, default=None, help="default $TOLU_DATA_DIR or ~/.local/share/tolu"
    )
    parser.add_argument(
        "--database-url", default=None, help="default $TOLU_DATABASE_URL or SQLite in the data dir"
    )
    parser.add_argument("--migrate", action="store_true", help="upgrade an older schema before serving")
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="server processes sharing the port (more than 1 needs PostgreSQL; see docs/server.md)",
    )
    parser.add_argument("--log-level", default="info")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    announce(Role.SERVER)
    import uvicorn
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import SQLAlchemyError

    from runner.server import schema, workers
    from runner.server.app import create_app
    from runner.server.auth.settings import AuthSettingsError
    from runner.server.db import Database

    configure_logging(args.log_level)
    try:
        settings = ServerSettings.from_env(
            data_dir=args.data_dir, database_url=args.database_url, migrate=args.migrate or None
        )
    except AuthSettingsError as exc:
        print(f"tolu server: {exc}", file=sys.stderr)
        return 2
    refused = workers.check(args.workers, settings.url)
    if refused is not None:
        print(f"tolu server: {refused}", file=sys.stderr)
        return 2
    # Check the schema before uvicorn starts, so a mismatch is one clear line and
    # exit code 2 rather than a traceback inside the lifespan.
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    db = Database(settings.url)
    try:
        schema.ensure_current(db.engine, migrate=settings.migrate)
    except schema.SchemaError as exc:
        print(f"tolu server: {exc}", file=sys.stderr)
        return 2
    except SQLAlchemyError as exc:
        where = make_url(settings.url).render_as_string(hide_password=True)
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        print(f"tolu server: cannot use the database {where}: {reason}", file=sys.stderr)
        return 2
    finally:
        db.dispose()
    if args.workers > 1:
        workers.serve(
            settings, host=args.host, port=args.port, workers=args.workers, log_level=args.log_level
        )
        return 0
    app = create_app(settings)
    config = uvicorn.Config(
        app,
        host=args.host,
        port=args.port,
        log_level=args.log_level,
        access_log=False,
        lifespan="on",
    )
    server = uvicorn.Server(config)
    server.run()
    if not server.started:
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
