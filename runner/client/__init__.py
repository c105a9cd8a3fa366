"""Python client of the tolu server (see docs/client.md)."""

from runner.client.client import Client
from runner.client.config import config_path, default_url
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
from runner.client.jobs import JobBatch, JobRef
from runner.client.managers import SyncResult

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
