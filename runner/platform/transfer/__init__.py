"""Transfer backends: how a site moves stage-in and stage-out files.

A *location* in the site settings (``transfer.locations``) is an alias for
``"<backend>:<endpoint>"``: ``local:`` (this filesystem), ``local:/mnt/shared``
(this filesystem, remote paths taken under that root), ``globus:<endpoint uuid>``.
The transfer service (runner/site/transfer.py) groups items per location and
direction and hands each group to the location's backend as one task.

Adding a backend is adding a class::

    @register_backend("mycopy")
    class MyCopy(TransferBackend):
        def submit(self, direction, files): ...   # -> task id
        def status(self, task_ids): ...           # -> {task id: TaskStatus}
"""

from __future__ import annotations

from runner.platform.transfer.base import (
    TRANSFER_BACKENDS,
    FileTransfer,
    TaskState,
    TaskStatus,
    TransferBackend,
    TransferBackendError,
    get,
    parse_location,
    register_backend,
)

__all__ = [
    "TRANSFER_BACKENDS",
    "FileTransfer",
    "TaskState",
    "TaskStatus",
    "TransferBackend",
    "TransferBackendError",
    "get",
    "parse_location",
    "register_backend",
]
