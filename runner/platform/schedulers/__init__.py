"""Batch schedulers: a registry of small classes on one template-method base.

Adding a facility scheduler is adding one module with one class and its batch
script template next to it (docs/schedulers.md)::

    @register_scheduler("slurm")
    class Slurm(BatchScheduler): ...

``SCHEDULERS`` is a ``runner.registry.Registry``: ``get(name)`` imports the built-in
module on first use; a duplicate name is an error and an unknown one says which
names exist.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

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
from runner.registry import Registry, RegistryError

__all__ = [
    "SCHEDULERS",
    "BackfillWindow",
    "BatchScheduler",
    "CommandResult",
    "SchedulerError",
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


def _has_template(name: str, cls: type[BatchScheduler]) -> None:
    if not cls.template_file:
        raise RegistryError(f"scheduler {name!r} ({cls.__qualname__}) sets no template_file")


SCHEDULERS: Registry[type[BatchScheduler]] = Registry("scheduler", modules=BUILTIN, check=_has_template)
#: ``@register_scheduler("slurm")``: make a class the scheduler called ``slurm``.
register_scheduler = SCHEDULERS.register
#: the class registered as ``name`` (built-ins are imported on first use).
get = SCHEDULERS.get
names = SCHEDULERS.names


def create(name: str, work_dir: str | Path, **options: Any) -> BatchScheduler:
    """An instance of the scheduler ``name`` (runs no command)."""
    return get(name)(work_dir, **options)
