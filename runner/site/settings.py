"""A site's settings: one YAML file (``settings.yml``) in the site directory.

Validated when loaded, so a bad value stops ``tolu site start`` (or the launcher)
with the file, the key and what is wrong, not at 3 a.m. inside an allocation.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

SETTINGS_FILE = "settings.yml"
#: transfer backends a location may name (runner/platform/transfer/).
TRANSFER_BACKENDS = ("local", "globus")


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class NodeShape(Section):
    """What one compute node offers; 0 CPUs means: detect on the node."""

    cpus: int = Field(default=0, ge=0)
    gpus: int = Field(default=0, ge=0)


class LauncherSettings(Section):
    #: app launcher registry name: mpich | openmpi | srun | local
    mpi_launcher: str = "mpich"
    #: path or name of the MPI start command; empty: the launcher class default.
    mpiexec: str = ""
    #: extra arguments for every MPI start (list of strings, no shell).
    mpi_args: list[str] = Field(default_factory=list)
    node: NodeShape = Field(default_factory=NodeShape)
    #: where to read the allocation's nodes: auto | slurm | pbs | cobalt | hostfile | local
    node_discovery: str = "auto"
    hostfile: str = ""
    #: seconds between session heartbeats; the session expires after 3 missed.
    heartbeat_sec: float = Field(default=10.0, gt=0)
    #: serial mode: jobs prefetched per worker slot beyond what is running.
    prefetch: int = Field(default=2, ge=0)
    #: seconds between batched status reports to the server.
    report_interval_sec: float = Field(default=0.5, gt=0)
    #: stop after this many seconds with nothing to run (0: never).
    idle_timeout_sec: float = Field(default=0, ge=0)


class SchedulerSettings(Section):
    #: scheduler registry name: local | slurm | pbs | cobalt | lsf
    name: str = "local"
    #: seconds between status polls (one call for all of the site's batch jobs).
    poll_interval_sec: float = Field(default=10.0, gt=0)
    #: extra options rendered into every batch script.
    options: dict[str, str] = Field(default_factory=dict)
    #: commands run at the top of every batch script (environment setup).
    prelude: list[str] = Field(default_factory=list)
    default_project: str = ""
    default_queue: str = ""


class GlobusSettings(Section):
    #: this site's own Globus collection (the local end of every globus task).
    local_endpoint_id: str = ""
    #: confidential app client id; its secret is read from ``$<client_secret_env>``.
    client_id: str = ""
    client_secret_env: str = "TOLU_GLOBUS_CLIENT_SECRET"
    #: alternatively an access token for the transfer API in ``$<access_token_env>``.
    access_token_env: str = "TOLU_GLOBUS_TOKEN"


class TransferSettings(Section):
    #: alias -> "backend:endpoint" (e.g. ``local: "local:"``, ``alcf: "globus:<uuid>"``)
    locations: dict[str, str] = Field(default_factory=lambda: {"local": "local:"})
    max_items_per_task: int = Field(default=200, ge=1)
    #: tasks in flight per location.
    max_concurrent_tasks: int = Field(default=5, ge=1)
    #: failed tasks are retried this many times before their items go to ``error``.
    retry_limit: int = Field(default=3, ge=0)
    #: first pause before a retry; doubles with each further attempt.
    retry_backoff_sec: float = Field(default=5.0, ge=0)
    poll_interval_sec: float = Field(default=5.0, gt=0)
    globus: GlobusSettings = Field(default_factory=GlobusSettings)

    @field_validator("locations")
    @classmethod
    def _known_backends(cls, value: dict[str, str]) -> dict[str, str]:
        for alias, spec in value.items():
            backend, sep, _ = spec.partition(":")
            if not sep or backend not in TRANSFER_BACKENDS:
                raise ValueError(
                    f"{alias}: {spec!r} is not '<backend>:<endpoint>' with backend one of "
                    f"{', '.join(TRANSFER_BACKENDS)}"
                )
        return value


class ProcessingSettings(Section):
    workers: int = Field(default=2, ge=1)
    poll_interval_sec: float = Field(default=2.0, gt=0)


class QueueMaintainerSettings(Section):
    enabled: bool = False
    depth: int = Field(default=1, ge=0)
    num_nodes: int = Field(default=1, ge=1)
    wall_time_min: int = Field(default=10, ge=1)
    job_mode: str = "mpi"
    queue: str = ""
    project: str = ""
    filter_tags: dict[str, str] = Field(default_factory=dict)
    poll_interval_sec: float = Field(default=5.0, gt=0)


class AutoscalerSettings(Section):
    enabled: bool = False
    policy: str = "backlog"
    min_nodes: int = Field(default=1, ge=1)
    max_nodes: int = Field(default=1, ge=1)
    #: cap on the nodes of all allocations together (None: what the scheduler can give).
    max_total_nodes: int | None = Field(default=None, ge=1)
    min_wall_time_min: int = Field(default=10, ge=1)
    max_wall_time_min: int = Field(default=60, ge=1)
    max_queued: int = Field(default=1, ge=0)
    max_queue_wait_min: float = Field(default=0, ge=0)
    idle_timeout_min: float = Field(default=5, ge=0)
    job_mode: str = "mpi"
    queue: str = ""
    project: str = ""
    poll_interval_sec: float = Field(default=10.0, gt=0)

    @model_validator(mode="after")
    def _ranges(self) -> AutoscalerSettings:
        if self.min_nodes > self.max_nodes:
            raise ValueError(f"min_nodes ({self.min_nodes}) is larger than max_nodes ({self.max_nodes})")
        if self.min_wall_time_min > self.max_wall_time_min:
            raise ValueError(
                f"min_wall_time_min ({self.min_wall_time_min}) is larger than "
                f"max_wall_time_min ({self.max_wall_time_min})"
            )
        return self


class SiteSettings(Section):
    #: filled in by ``tolu site init`` when the site is registered with the server.
    site_id: int | None = None
    name: str = ""
    server_url: str = ""
    scheduler: SchedulerSettings = Field(default_factory=SchedulerSettings)
    launcher: LauncherSettings = Field(default_factory=LauncherSettings)
    transfer: TransferSettings = Field(default_factory=TransferSettings)
    processing: ProcessingSettings = Field(default_factory=ProcessingSettings)
    queue_maintainer: QueueMaintainerSettings = Field(default_factory=QueueMaintainerSettings)
    autoscaler: AutoscalerSettings = Field(default_factory=AutoscalerSettings)
    #: agent services to run: processing, transfer, scheduler, queue_maintainer, autoscaler
    services: list[str] = Field(
        default_factory=lambda: ["processing", "transfer", "scheduler", "queue_maintainer", "autoscaler"]
    )


class SettingsError(ValueError):
    """A settings file that cannot be used; the message names the file and the key."""


def load(site_dir: str | os.PathLike[str]) -> SiteSettings:
    """Read and validate ``SITE/settings.yml``."""
    path = Path(site_dir) / SETTINGS_FILE
    try:
        raw: Any = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        raise SettingsError(f"{path}: no such file (create one with `tolu site init {site_dir}`)") from None
    except yaml.YAMLError as exc:
        raise SettingsError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise SettingsError(f"{path}: expected a mapping of settings, got {type(raw).__name__}")
    try:
        return SiteSettings.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        key = ".".join(str(p) for p in first["loc"])
        raise SettingsError(f"{path}: {key}: {first['msg']}") from None
