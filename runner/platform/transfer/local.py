"""``local``: copy on this filesystem, each task in a worker thread.

The endpoint, if given, is a root directory the remote paths are taken under
(``local:/mnt/shared`` makes ``shared:/a/b`` mean ``/mnt/shared/a/b``).
A task is reported DONE only after every copy returned and the destination's
size matches the source's; any exception fails the whole task with its reason.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from runner.models import TransferDirection
from runner.platform.settings import TransferSettings
from runner.platform.transfer.base import (
    FileTransfer,
    TaskState,
    TaskStatus,
    TransferBackend,
    register_backend,
)


@register_backend("local")
class LocalBackend(TransferBackend):
    def __init__(self, endpoint: str, settings: TransferSettings) -> None:
        super().__init__(endpoint, settings)
        self._pool: ThreadPoolExecutor | None = None
        self._tasks: dict[str, Future[None]] = {}

    def remote_path(self, remote: str) -> Path:
        if self.endpoint:
            return Path(self.endpoint) / remote.lstrip("/")
        return Path(remote)

    def submit(self, direction: TransferDirection, files: Sequence[FileTransfer]) -> str:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(
                max_workers=self.settings.max_concurrent_tasks, thread_name_prefix="tolu-copy"
            )
        pairs = [
            (self.remote_path(f.remote), f.local, f.recursive)
            if direction == TransferDirection.IN
            else (f.local, self.remote_path(f.remote), f.recursive)
            for f in files
        ]
        task_id = f"local-{uuid.uuid4().hex}"
        self._tasks[task_id] = self._pool.submit(_copy_all, pairs)
        return task_id

    def status(self, task_ids: Sequence[str]) -> dict[str, TaskStatus]:
        result: dict[str, TaskStatus] = {}
        for task_id in task_ids:
            future = self._tasks.get(task_id)
            if future is None:
                result[task_id] = TaskStatus(
                    TaskState.FAILED, f"unknown local task {task_id} (agent restarted?)"
                )
            elif not future.done():
                result[task_id] = TaskStatus(TaskState.ACTIVE)
            else:
                del self._tasks[task_id]
                exc = future.exception()
                if exc is None:
                    result[task_id] = TaskStatus(TaskState.DONE)
                else:
                    result[task_id] = TaskStatus(TaskState.FAILED, f"{type(exc).__name__}: {exc}")
        return result

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


def _copy_all(pairs: list[tuple[Path, Path, bool]]) -> None:
    for source, destination, recursive in pairs:
        _copy(source, destination, recursive)


def _copy(source: Path, destination: Path, recursive: bool) -> None:
    if source.is_dir():
        if not recursive:
            raise IsADirectoryError(f"{source} is a directory (set recursive: true to copy it)")
        shutil.copytree(source, destination, dirs_exist_ok=True)
        return
    if not source.exists():
        raise FileNotFoundError(f"no such file: {source}")
    destination.parent.mkdir(parents=True, exist_ok=True)
    # Copy to a temporary name and rename, so a half-written file is never taken for done.
    partial = destination.with_name(f".{destination.name}.tolu-partial")
    shutil.copyfile(source, partial)
    shutil.copystat(source, partial)
    if partial.stat().st_size != source.stat().st_size:
        partial.unlink(missing_ok=True)
        raise OSError(f"copy of {source} to {destination} is incomplete")
    os.replace(partial, destination)
