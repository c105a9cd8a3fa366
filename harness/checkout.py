"""The source checkout the harness runs from: the server image and the pipeline's wheel are
built from it (an installed tolu without its sources cannot build them)."""

from __future__ import annotations

import shutil
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def is_checkout(root: Path = REPO_ROOT) -> bool:
    return (root / "pyproject.toml").is_file()


def forget_stale_build(root: Path = REPO_ROOT) -> None:
    """Remove setuptools' scratch copy of the sources (``build/lib``) before a wheel is built
    from the checkout: setuptools copies files into it but never removes one, so a module
    renamed or deleted since (a migration renumbered at a rebase) would still be packaged."""
    shutil.rmtree(root / "build" / "lib", ignore_errors=True)
