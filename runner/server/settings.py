"""How one server runs: where its data lives, which database, how it authenticates."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from runner.server.auth.settings import AuthSettings
from runner.server.db import sqlite_url

ENV_DATA_DIR = "TOLU_DATA_DIR"
ENV_DATABASE_URL = "TOLU_DATABASE_URL"
#: the log level of the server's own loggers (``--log-level``), also for its workers.
ENV_LOG_LEVEL = "TOLU_SERVER_LOG_LEVEL"


def configure_logging(level: str) -> None:
    """The server's log lines: time, level, logger, message (uvicorn's own are uvicorn's)."""
    logging.basicConfig(level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def default_data_dir() -> Path:
    env = os.environ.get(ENV_DATA_DIR)
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "tolu"


@dataclass(frozen=True, kw_only=True)
class ServerSettings:
    data_dir: Path
    #: None: SQLite file ``<data_dir>/tolu.db``.
    database_url: str | None = None
    #: upgrade an older schema at startup (an empty database is always set up).
    migrate: bool = False
    #: token lifetimes, login limits, the identity provider (``TOLU_*``; docs/auth.md).
    auth: AuthSettings = field(default_factory=AuthSettings)
    #: how often the background task looks for expired sessions.
    session_check_sec: float = 2.0
    #: largest request body in bytes (413 beyond it, found while reading: gate.py).
    max_body_bytes: int = 64 << 20

    @property
    def url(self) -> str:
        return self.database_url or sqlite_url(self.data_dir)

    @classmethod
    def from_env(cls, **overrides: object) -> ServerSettings:
        values: dict[str, object] = {
            "data_dir": default_data_dir(),
            "database_url": os.environ.get(ENV_DATABASE_URL) or None,
            "auth": AuthSettings.from_env(),
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        values["data_dir"] = Path(str(values["data_dir"])).expanduser()
        return cls(**values)  # type: ignore[arg-type]
