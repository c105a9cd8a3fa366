"""Python client of the tolu server (see docs/client.md).

One module per manager (``sites``, ``apps``, ``jobs``, ``dag`` for ``client.jobs.batch()``,
``events``, ``transfers``, ``batch_jobs``, ``sessions``) on the shared plumbing of
``_base`` (paging, parsing) and ``_http`` (the pooled session and its retries).
"""

from runner.client.apps import SyncResult
from runner.client.client import Client
from runner.client.config import config_path, default_url
from runner.client.dag import JobBatch, JobRef
from runner.client.errors import (
    APIError,
    AuthError,
    ConfigError,
    Conflict,
    FieldError,
    InvalidRequest,
    JobsFailed,
    NotFound,
    ServerError,
    ToluError,
    TransportError,
    WaitTimeout,
)

__all__ = [
    "APIError",
    "AuthError",
    "Client",
    "ConfigError",
    "Conflict",
    "FieldError",
    "InvalidRequest",
    "JobBatch",
    "JobRef",
    "JobsFailed",
    "NotFound",
    "ServerError",
    "SyncResult",
    "ToluError",
    "TransportError",
    "WaitTimeout",
    "config_path",
    "default_url",
]
