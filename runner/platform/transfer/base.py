"""The transfer-backend contract and its registry (``TRANSFER_BACKENDS``, a ``runner.registry.Registry``)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import ClassVar

from runner.models import TransferDirection
from runner.platform.settings import TransferSettings
from runner.registry import Registry

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


TRANSFER_BACKENDS: Registry[type[TransferBackend]] = Registry("transfer backend", modules=BACKEND_MODULES)
register_backend = TRANSFER_BACKENDS.register
#: the backend class called ``name`` (its module is imported on first use).
get = TRANSFER_BACKENDS.get


def parse_location(spec: str) -> tuple[str, str]:
    """``"globus:<uuid>"`` -> ``("globus", "<uuid>")``; ``"local:"`` -> ``("local", "")``."""
    backend, sep, endpoint = spec.partition(":")
    if not sep or not backend:
        raise ValueError(f"transfer location {spec!r} is not '<backend>:<endpoint>'")
    if backend not in TRANSFER_BACKENDS:
        raise ValueError(
            f"transfer location {spec!r}: unknown backend {backend!r} "
            f"(known: {', '.join(TRANSFER_BACKENDS.names())})"
        )
    return backend, endpoint
