"""``globus``: one Globus transfer task per batch, through globus-sdk's TransferClient.

The location's endpoint is the remote collection id (``globus:<uuid>``); this
site's own collection is ``transfer.globus.local_endpoint_id`` and local paths are
given to Globus as they are on this host. Credentials: a confidential app
(``transfer.globus.client_id`` + the secret in the environment variable named by
``client_secret_env``) or an access token in the variable named by
``access_token_env``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence

try:
    import globus_sdk
except ImportError:
    from runner.extras import require_extra

    require_extra("globus", "the globus transfer backend")  # raises naming the extra if it is missing
    raise

from runner.models import TransferDirection
from runner.platform.settings import TransferSettings
from runner.platform.transfer.base import (
    FileTransfer,
    TaskState,
    TaskStatus,
    TransferBackend,
    TransferBackendError,
    register_backend,
)

log = logging.getLogger("tolu.transfer.globus")

#: Globus task status -> ours. Anything else is ACTIVE with a warning (never a crash).
STATES: dict[str, TaskState] = {
    "ACTIVE": TaskState.ACTIVE,
    "INACTIVE": TaskState.ACTIVE,  # paused, e.g. credentials expired; Globus resumes it
    "SUCCEEDED": TaskState.DONE,
    "FAILED": TaskState.FAILED,
}


@register_backend("globus")
class GlobusBackend(TransferBackend):
    def __init__(self, endpoint: str, settings: TransferSettings) -> None:
        super().__init__(endpoint, settings)
        self._client: globus_sdk.TransferClient | None = None

    @property
    def client(self) -> globus_sdk.TransferClient:
        if self._client is None:
            self._client = globus_sdk.TransferClient(authorizer=self._authorizer())
        return self._client

    def _authorizer(self) -> globus_sdk.authorizers.GlobusAuthorizer:
        cfg = self.settings.globus
        secret = os.environ.get(cfg.client_secret_env, "")
        if cfg.client_id and secret:
            auth_client = globus_sdk.ConfidentialAppAuthClient(cfg.client_id, secret)
            return globus_sdk.ClientCredentialsAuthorizer(auth_client, globus_sdk.TransferClient.scopes.all)
        token = os.environ.get(cfg.access_token_env, "")
        if token:
            return globus_sdk.AccessTokenAuthorizer(token)
        raise TransferBackendError(
            f"globus: no credentials: set transfer.globus.client_id and ${cfg.client_secret_env}, "
            f"or ${cfg.access_token_env}"
        )

    def submit(self, direction: TransferDirection, files: Sequence[FileTransfer]) -> str:
        local_endpoint = self.settings.globus.local_endpoint_id
        if not local_endpoint:
            raise TransferBackendError("globus: transfer.globus.local_endpoint_id is not set")
        inbound = direction == TransferDirection.IN
        data = globus_sdk.TransferData(
            self.endpoint if inbound else local_endpoint,
            local_endpoint if inbound else self.endpoint,
            label=f"tolu stage-{direction.value} {len(files)} items",
            sync_level="checksum",
            verify_checksum=True,
        )
        for f in files:
            src, dst = (f.remote, str(f.local)) if inbound else (str(f.local), f.remote)
            data.add_item(src, dst, recursive=f.recursive)
        try:
            result = self.client.submit_transfer(data)
        except globus_sdk.GlobusAPIError as exc:
            raise TransferBackendError(
                f"globus: submit failed: {exc.http_status} {exc.code}: {exc.message}"
            ) from exc
        except globus_sdk.NetworkError as exc:
            raise TransferBackendError(f"globus: submit failed: {exc}") from exc
        return str(result["task_id"])

    def status(self, task_ids: Sequence[str]) -> dict[str, TaskStatus]:
        result: dict[str, TaskStatus] = {}
        for task_id in task_ids:
            try:
                task = self.client.get_task(task_id)
            except globus_sdk.GlobusAPIError as exc:
                if exc.http_status == 404:
                    result[task_id] = TaskStatus(TaskState.FAILED, f"globus task {task_id} not found")
                    continue
                raise TransferBackendError(
                    f"globus: get_task {task_id}: {exc.http_status} {exc.message}"
                ) from exc
            except globus_sdk.NetworkError as exc:
                raise TransferBackendError(f"globus: get_task {task_id}: {exc}") from exc
            raw = str(task.get("status", ""))
            state = STATES.get(raw)
            if state is None:
                log.warning("globus task %s: unknown status %r, taken as active", task_id, raw)
                state = TaskState.ACTIVE
            detail = ""
            if state == TaskState.FAILED:
                fatal = task.get("fatal_error") or {}
                detail = (
                    f"globus task {task_id} failed: "
                    f"{fatal.get('code') or task.get('nice_status') or 'FAILED'}"
                    f"{': ' + str(fatal['description']) if fatal.get('description') else ''}"
                )
            elif raw == "INACTIVE":
                detail = f"globus task {task_id} inactive: {task.get('nice_status') or ''}"
            result[task_id] = TaskStatus(state, detail)
        return result
