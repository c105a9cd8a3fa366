"""Several server processes on one listening socket: ``--workers N`` (PostgreSQL).

One Python process answers requests on one core at a time. With ``--workers N``
uvicorn's supervisor binds the socket once and starts N worker processes that share
it (the kernel hands each new connection to one of them); each worker is a whole
server — application, connection pool, session-expiry task — built by ``create``.
What two workers do at once is kept apart by PostgreSQL: jobs are acquired with
``FOR UPDATE SKIP LOCKED``, moved under row locks taken in id order
(runner/server/lifecycle.py, transitions.py), and an expired session is ended by
the one worker that locks it first.

SQLite allows one writer at a time: more processes would only queue on its lock,
so ``--workers`` above 1 is refused for it (``check``).

The supervisor (``tolu-super``) restarts a worker that dies; a worker (``tolu-server``)
goes when the supervisor goes, however it goes (``daemon.die_with_parent``), so
stopping the supervisor by its PID stops the server.
"""

from __future__ import annotations

import os
import sys

from fastapi import FastAPI

from runner.daemon import die_with_parent
from runner.roles import Role, announce
from runner.server.app import create_app
from runner.server.db import database_kind
from runner.server.settings import (
    ENV_DATA_DIR,
    ENV_DATABASE_URL,
    ENV_LOG_LEVEL,
    ServerSettings,
    configure_logging,
)

#: the supervisor's pid, for its workers (environment variable).
ENV_SUPERVISOR = "TOLU_SERVER_SUPERVISOR"


#: why SQLite gets one server process (also said by ``tolu bench api --server-workers``).
ONE_SQLITE_WRITER = (
    "SQLite takes one writer at a time, so more server processes would only wait for each other"
)


def check(workers: int, database_url: str) -> str | None:
    """Why ``workers`` processes cannot serve ``database_url``, or None."""
    if workers < 1:
        return f"--workers must be at least 1, got {workers}"
    if workers > 1 and database_kind(database_url) == "sqlite":
        return (
            f"--workers {workers} needs PostgreSQL (--database-url postgresql+psycopg://...): "
            + ONE_SQLITE_WRITER
        )
    return None


def create() -> FastAPI:
    """The application of one worker (uvicorn's factory, called in the worker)."""
    supervisor = int(os.environ[ENV_SUPERVISOR])
    if not die_with_parent(supervisor) and os.getppid() != supervisor:
        sys.exit("tolu server worker: the supervisor is gone")
    announce(Role.SERVER)
    configure_logging(os.environ.get(ENV_LOG_LEVEL, "info"))
    return create_app(ServerSettings.from_env())


def serve(settings: ServerSettings, *, host: str, port: int, workers: int, log_level: str) -> None:
    """Run ``workers`` worker processes on ``host:port`` until SIGTERM or SIGINT."""
    import uvicorn

    announce(Role.SUPERVISOR)
    # The workers build their settings from the environment (the signing keys they
    # share are made and rotated under a file lock: runner/server/auth/keys.py).
    os.environ[ENV_DATA_DIR] = str(settings.data_dir)
    os.environ[ENV_DATABASE_URL] = settings.url
    os.environ[ENV_SUPERVISOR] = str(os.getpid())
    os.environ[ENV_LOG_LEVEL] = log_level
    uvicorn.run(
        "runner.server.workers:create",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level=log_level,
        access_log=False,
        lifespan="on",
    )
