"""Server containers and volumes left behind by a process that died (SIGKILL): the next
``ContainerServer.start()`` removes them."""

from __future__ import annotations

import contextlib
import os
from typing import Any

from harness.container.engine import OWNER_LABEL


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _owner(labels: dict[str, str] | None) -> int:
    try:
        return int((labels or {}).get(OWNER_LABEL, "0"))
    except ValueError:
        return 0


def remove_stale_containers(client: Any) -> int:
    """Remove tolu server containers (and the volumes made for them) whose owning process is
    gone; return how many."""
    removed = 0
    for container in client.containers.list(all=True, filters={"label": OWNER_LABEL}):
        owner = _owner(container.labels)
        if owner and not _pid_alive(owner):
            with contextlib.suppress(Exception):
                container.remove(force=True, v=True)
                removed += 1
    for volume in client.volumes.list(filters={"label": OWNER_LABEL}):
        owner = _owner(volume.attrs.get("Labels"))
        if owner and not _pid_alive(owner):
            with contextlib.suppress(Exception):  # a volume still in use is refused by docker
                volume.remove()
                removed += 1
    return removed
