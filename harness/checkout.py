"""The source checkout the harness runs from: the server image and the pipeline's wheel are
built from it (an installed tolu without its sources cannot build them)."""

from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def is_checkout(root: Path = REPO_ROOT) -> bool:
    return (root / "pyproject.toml").is_file()
