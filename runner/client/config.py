"""The credentials file: YAML ``{url, username, token}``, readable by its owner only (0600)."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from runner.client.errors import ConfigError

ENV_CONFIG = "TOLU_CONFIG"
ENV_URL = "TOLU_URL"
DEFAULT_URL = "http://127.0.0.1:8000"


def config_path(path: str | os.PathLike[str] | None = None) -> Path:
    """``path``, else ``$TOLU_CONFIG``, else ``~/.config/tolu/credentials.yaml``."""
    if path is not None:
        return Path(path)
    env = os.environ.get(ENV_CONFIG)
    if env:
        return Path(env)
    return Path.home() / ".config" / "tolu" / "credentials.yaml"


def default_url() -> str:
    return os.environ.get(ENV_URL) or DEFAULT_URL


@dataclass(frozen=True)
class Credentials:
    url: str
    username: str
    token: str


def read_config(path: str | os.PathLike[str] | None = None) -> Credentials:
    """Read the credentials file; ConfigError names the file and what is wrong."""
    file = config_path(path)
    try:
        raw: Any = yaml.safe_load(file.read_text())
    except FileNotFoundError:
        raise ConfigError(f"no credentials at {file}: log in first with `tolu login`") from None
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read credentials {file}: {exc}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{file}: expected a mapping with url, username and token")
    missing = [k for k in ("url", "username", "token") if not raw.get(k)]
    if missing:
        raise ConfigError(f"{file}: missing {', '.join(missing)}; log in again with `tolu login`")
    return Credentials(url=str(raw["url"]), username=str(raw["username"]), token=str(raw["token"]))


def write_config(creds: Credentials, path: str | os.PathLike[str] | None = None) -> Path:
    """Write the credentials atomically with mode 0600 (directory 0700 if created)."""
    file = config_path(path)
    file.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    text = yaml.safe_dump({"url": creds.url, "username": creds.username, "token": creds.token})
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
