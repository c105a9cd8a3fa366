"""Batch schedulers: a registry of small classes on one template-method base.

Adding a facility scheduler is adding one module with one class and its batch
script template next to it (docs/schedulers.md)::

    @register_scheduler("slurm")
    class Slurm(BatchScheduler): ...

``get(name)`` imports the built-in module on first use; a duplicate name is an
error and an unknown one says which names exist.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from runner.platform.schedulers.base import (
    BackfillWindow,
    BatchScheduler,
    CommandResult,
    SchedulerError,
    SchedulerStatus,
    SchedulerUnavailable,
    SubmitError,
    UnsafeValue,
)

__all__ = [
    "BackfillWindow",
    "BatchScheduler",
    "CommandResult",
    "SchedulerError",
    "SchedulerRegistryError",
    "SchedulerStatus",
    "SchedulerUnavailable",
    "SubmitError",
    "UnsafeValue",
    "create",
    "get",
    "names",
    "register_scheduler",
]

#: built-in scheduler name -> module that registers it (imported on first use).
BUILTIN: dict[str, str] = {
    "local": "runner.platform.schedulers.local",
    "slurm": "runner.platform.schedulers.slurm",
    "pbs": "runner.platform.schedulers.pbs",
    "cobalt": "runner.platform.schedulers.cobalt",
    "lsf": "runner.platform.schedulers.lsf",
}


class SchedulerRegistryError(LookupError):
    """An unknown scheduler name, or one registered twice."""


_REGISTRY: dict[str, type[BatchScheduler]] = {}
C = TypeVar("C", bound=type[BatchScheduler])


def register_scheduler(name: str) -> Callable[[C], C]:
    """Class decorator: make ``cls`` the scheduler called ``name``. Duplicates are errors."""

    def deco(cls: C) -> C:
        existing = _REGISTRY.get(name)
        if existing is not None and existing is not cls:
            raise SchedulerRegistryError(
                f"scheduler {name!r} registered twice: {existing.__module__}.{existing.__qualname__} "
                f"and {cls.__module__}.{cls.__qualname__}"
            )
        if not cls.template_file:
            raise SchedulerRegistryError(f"scheduler {name!r} ({cls.__qualname__}) sets no template_file")
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return deco


def get(name: str) -> type[BatchScheduler]:
    """The class registered as ``name`` (built-ins are imported on first use)."""
    if name not in _REGISTRY and name in BUILTIN:
        importlib.import_module(BUILTIN[name])
    try:
        return _REGISTRY[name]
    except KeyError:
        known = ", ".join(names())
        raise SchedulerRegistryError(f"unknown scheduler {name!r} (known: {known})") from None


def names() -> list[str]:
    return sorted(set(BUILTIN) | set(_REGISTRY))


def create(name: str, work_dir: str | Path, **options: Any) -> BatchScheduler:
    """An instance of the scheduler ``name`` (runs no command)."""
    return get(name)(work_dir, **options)
