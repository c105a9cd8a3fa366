"""Credentials files: YAML, readable by their owner only (0600).

A user's login (``tolu login``) lives in ``$TOLU_CONFIG`` or
``~/.config/tolu/credentials.yaml``: ``url``, ``username``, the access ``token``, the
``refresh_token`` and the access token's ``expires_at``/``expires_in``. The client
rewrites it when it renews the login (``runner.client.auth``), under a lock file.

A site's token (``tolu site init``, ``tolu token create --site DIR --save``) lives in
``SITE_DIR/credentials.yaml``: ``url``, ``username`` and ``api_token``; the site agent
and its launchers use it instead of the user's login.
"""

from __future__ import annotations

import fcntl
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from runner.client.errors import ConfigError

if TYPE_CHECKING:
    from runner.client.auth import LoginCredential

ENV_CONFIG = "TOLU_CONFIG"
ENV_URL = "TOLU_URL"
DEFAULT_URL = "http://127.0.0.1:8000"
#: the file of a site's token inside its site directory.
SITE_CREDENTIALS = "credentials.yaml"


def config_path(path: str | os.PathLike[str] | None = None) -> Path:
    """``path``, else ``$TOLU_CONFIG``, else ``~/.config/tolu/credentials.yaml``."""
    if path is not None:
        return Path(path)
    env = os.environ.get(ENV_CONFIG)
    if env:
        return Path(env)
    return Path.home() / ".config" / "tolu" / "credentials.yaml"


def site_credentials_path(site_dir: str | os.PathLike[str]) -> Path:
    return Path(site_dir) / SITE_CREDENTIALS


def default_url() -> str:
    return os.environ.get(ENV_URL) or DEFAULT_URL


@dataclass(frozen=True)
class Credentials:
    url: str
    username: str
    #: the access token (a login's; empty for a token file).
    token: str = ""
    refresh_token: str | None = None
    expires_at: str | None = None
    expires_in: float | None = None
    #: the secret of a token made with `tolu token create` (site credentials).
    api_token: str | None = None

    def to_yaml(self) -> dict[str, Any]:
        out: dict[str, Any] = {"url": self.url, "username": self.username}
        for key in ("token", "refresh_token", "expires_at", "expires_in", "api_token"):
            value = getattr(self, key)
            if value:
                out[key] = value
        return out


def read_config(path: str | os.PathLike[str] | None = None) -> Credentials:
    """Read a credentials file; ConfigError names the file and what is wrong."""
    file = config_path(path)
    try:
        raw: Any = yaml.safe_load(file.read_text())
    except FileNotFoundError:
        raise ConfigError(f"no credentials at {file}: log in first with `tolu login`") from None
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read credentials {file}: {exc}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{file}: expected a mapping with url, username and token")
    missing = [k for k in ("url", "username") if not raw.get(k)]
    if not raw.get("token") and not raw.get("api_token"):
        missing.append("token")
    if missing:
        raise ConfigError(f"{file}: missing {', '.join(missing)}; log in again with `tolu login`")
    expires_in = raw.get("expires_in")
    return Credentials(
        url=str(raw["url"]),
        username=str(raw["username"]),
        token=str(raw.get("token") or ""),
        refresh_token=str(raw["refresh_token"]) if raw.get("refresh_token") else None,
        expires_at=str(raw["expires_at"]) if raw.get("expires_at") else None,
        expires_in=float(expires_in) if isinstance(expires_in, int | float) else None,
        api_token=str(raw["api_token"]) if raw.get("api_token") else None,
    )


def write_config(creds: Credentials, path: str | os.PathLike[str] | None = None) -> Path:
    """Write the credentials atomically with mode 0600 (directory 0700 if created)."""
    file = config_path(path)
    file.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    text = yaml.safe_dump(creds.to_yaml(), sort_keys=False)
    # mkstemp creates the file 0600, so the token is never readable by others, not even briefly.
    fd, tmp = tempfile.mkstemp(prefix=".credentials-", dir=file.parent)
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        os.chmod(tmp, 0o600)
        os.replace(tmp, file)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return file


class CredentialStore:
    """A login's credentials file, rewritten as the login renews (see runner.client.auth)."""

    def __init__(self, path: Path, creds: Credentials) -> None:
        self.path = path
        self.creds = creds

    @contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the file's lock: one process at a time renews the login it holds."""
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self.path.with_name(self.path.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def read_or_none(self) -> Credentials | None:
        """What the file holds now, if it is still this login's (same server and user)."""
        try:
            saved = read_config(self.path)
        except ConfigError:
            return None
        if saved.url != self.creds.url or saved.username != self.creds.username:
            return None
        return saved

    def save_login(self, credential: LoginCredential) -> None:
        access = credential.current
        expires: datetime | None = access.expires_at if access else None
        self.creds = replace(
            self.creds,
            token=access.token if access else "",
            refresh_token=credential.refresh_token,
            expires_at=expires.isoformat() if expires else None,
            expires_in=access.lifetime_sec if access else None,
        )
        write_config(self.creds, self.path)
