"""The launcher's log file: ``SITE/log/launcher-<pid>.log`` (or a given name)."""

from __future__ import annotations

import logging
import os
from pathlib import Path


def setup_logging(site_dir: Path, name: str | None = None) -> Path:
    """Send the ``runner`` loggers (INFO and up) to a file in ``SITE/log``; return its path."""
    log_dir = site_dir / "log"
    log_dir.mkdir(parents=True, exist_ok=True)
    path = log_dir / (name or f"launcher-{os.getpid()}.log")
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger("runner")
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    return path
