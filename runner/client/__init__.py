"""Python client of the tolu server (see docs/client.md).

One module per manager (``sites``, ``apps``, ``jobs``, ``dag`` for ``client.jobs.batch()``,
``dags`` for DAG prototypes, ``events``, ``transfers``, ``batch_jobs``, ``sessions``,
``analytics``) on the shared plumbing of ``_base`` (paging, parsing) and ``_http`` (the
pooled session and its retries); ``handles`` (job futures), ``results`` (job lists and
tables for notebooks), ``failures`` (why a job failed) and ``urls`` (the server URL).
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
from runner.client.failures import Failure
from runner.client.handles import JobFailed, JobHandle
from runner.client.results import JobList, Table

__all__ = [
    "APIError",
    "AuthError",
    "Client",
    "ConfigError",
    "Conflict",
    "Failure",
    "FieldError",
    "InvalidRequest",
    "JobBatch",
    "JobFailed",
    "JobHandle",
    "JobList",
    "JobRef",
    "JobsFailed",
    "NotFound",
    "ServerError",
    "SyncResult",
    "Table",
    "ToluError",
    "TransportError",
    "WaitTimeout",
    "config_path",
    "default_url",
]
