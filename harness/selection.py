"""Evaluate ``location`` and ``requires`` marks (like ``_pytest/skipping.py``).

Pure functions: marks and the detection in, a small frozen verdict out. The
plugin turns a verdict into ``skip`` (the reason shows in the summary) or, when a
missing feature is required (``--require``), into a failure.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import pytest

from harness.locations import Detection


@dataclass(frozen=True)
class Unavailable:
    """Why a test cannot run here; ``required`` names missing features that must not be skipped."""

    reason: str
    required: tuple[str, ...] = ()

    @property
    def must_fail(self) -> bool:
        return bool(self.required)


def _names(mark: pytest.Mark) -> list[str]:
    names: list[str] = []
    for arg in mark.args:
        if isinstance(arg, str):
            names.append(arg)
        elif isinstance(arg, Iterable):
            names.extend(str(a) for a in arg)
        else:
            raise TypeError(f"@pytest.mark.{mark.name} takes names (str), got {arg!r}")
    if not names:
        raise TypeError(f"@pytest.mark.{mark.name} needs at least one name")
    return names


def evaluate_location_marks(marks: Iterable[pytest.Mark], detection: Detection) -> Unavailable | None:
    """Every ``location(...)`` mark must list the current location."""
    here = detection.location.name
    for mark in marks:
        if mark.name != "location":
            continue
        allowed = _names(mark)
        if here not in allowed:
            return Unavailable(f"only at location {' or '.join(allowed)}; this is {here!r}")
    return None


def evaluate_requires_marks(
    marks: Iterable[pytest.Mark], detection: Detection, required: frozenset[str]
) -> Unavailable | None:
    """Every feature in every ``requires(...)`` mark must be available here."""
    missing: list[str] = []
    for mark in marks:
        if mark.name == "requires":
            missing.extend(f for f in _names(mark) if f not in detection.features and f not in missing)
    return missing_verdict(missing, detection, required)


def missing_verdict(
    missing: Sequence[str], detection: Detection, required: frozenset[str]
) -> Unavailable | None:
    """The verdict for features that are not here (shared by marks and fixtures)."""
    if not missing:
        return None
    reasons = "; ".join(detection.absent_reason(f) for f in missing)
    must = tuple(f for f in missing if f in required)
    if must:
        return Unavailable(f"required component missing ({', '.join(must)} in --require): {reasons}", must)
    return Unavailable(f"requires {', '.join(missing)}: {reasons}")


def parse_required(option: str | None, env: str | None = None) -> frozenset[str]:
    """``--require docker,slurm`` (or ``$TOLU_REQUIRE``) -> {"docker", "slurm"}."""
    env = os.environ.get("TOLU_REQUIRE", "") if env is None else env
    text = option if option else env
    return frozenset(part.strip() for part in text.replace(" ", ",").split(",") if part.strip())
