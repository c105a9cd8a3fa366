"""The transfer-backend contract and its registry."""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import ClassVar, TypeVar

from runner.models import TransferDirection
from runner.platform.settings import TransferSettings

#: backend name -> module that registers it (imported on first use).
BACKEND_MODULES: dict[str, str] = {
    "local": "runner.platform.transfer.local",
    "globus": "runner.platform.transfer.globus",
}


class TaskState(StrEnum):
    ACTIVE = "active"
    DONE = "done"
    FAILED = "failed"


@dataclass(frozen=True)
class TaskStatus:
    state: TaskState
    #: why a task failed (or a note on an active one), for the item's ``error``.
    detail: str = ""


@dataclass(frozen=True)
class FileTransfer:
    """One file or directory of a task: the remote path and the absolute local path."""

    remote: str
    local: Path
    recursive: bool = False


class TransferBackendError(RuntimeError):
    """A task could not be submitted or asked about; the message says why."""


class TransferBackend(ABC):
    """Moves files between one remote endpoint and this site's filesystem."""

    name: ClassVar[str] = ""

    def __init__(self, endpoint: str, settings: TransferSettings) -> None:
        self.endpoint = endpoint
        self.settings = settings

    @abstractmethod
    def submit(self, direction: TransferDirection, files: Sequence[FileTransfer]) -> str:
        """Start one task moving ``files`` (``in``: remote -> local); return its id.

        Raise TransferBackendError when the task cannot be started.
        """

    @abstractmethod
    def status(self, task_ids: Sequence[str]) -> dict[str, TaskStatus]:
        """The state of each task. A task this backend does not know is FAILED."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release threads or connections."""


class BackendRegistryError(LookupError):
    pass


_REGISTRY: dict[str, type[TransferBackend]] = {}
B = TypeVar("B", bound=type[TransferBackend])


def register_backend(name: str) -> Callable[[B], B]:
    def deco(cls: B) -> B:
        existing = _REGISTRY.get(name)
        if existing is not None and existing is not cls:
            raise BackendRegistryError(f"transfer backend {name!r} registered twice")
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return deco


def get(name: str) -> type[TransferBackend]:
    """The backend class called ``name``."""
    if name not in _REGISTRY:
        module = BACKEND_MODULES.get(name)
        if module is None:
            raise BackendRegistryError(
                f"unknown transfer backend {name!r} (known: {', '.join(sorted(BACKEND_MODULES))})"
            )
        importlib.import_module(module)
        if name not in _REGISTRY:
            raise BackendRegistryError(f"transfer backend {name!r}: {module} does not register it")
    return _REGISTRY[name]


def parse_location(spec: str) -> tuple[str, str]:
    """``"globus:<uuid>"`` -> ``("globus", "<uuid>")``; ``"local:"`` -> ``("local", "")``."""
    backend, sep, endpoint = spec.partition(":")
    if not sep or not backend:
        raise ValueError(f"transfer location {spec!r} is not '<backend>:<endpoint>'")
    if backend not in BACKEND_MODULES and backend not in _REGISTRY:
        raise ValueError(
            f"transfer location {spec!r}: unknown backend {backend!r} "
            f"(known: {', '.join(sorted(BACKEND_MODULES))})"
        )
    return backend, endpoint
