"""A site's settings: one YAML file (``settings.yml``) in the site directory.

Validated when loaded, so a bad value stops ``tolu site start`` (or the launcher)
with the file, the key and what is wrong, not at 3 a.m. inside an allocation.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml
from pydantic import Field, ValidationError, model_validator

# The platform's sections live on the platform floor; a site's settings compose them
# (and keep offering them under this module's name).
from runner.platform.settings import (
    GlobusSettings,
    LauncherSettings,
    NodeShape,
    SchedulerSettings,
    Section,
    TransferSettings,
)

__all__ = [
    "SETTINGS_FILE",
    "AutoscalerSettings",
    "GlobusSettings",
    "LauncherSettings",
    "NodeShape",
    "ProcessingSettings",
    "QueueMaintainerSettings",
    "SchedulerSettings",
    "Section",
    "SettingsError",
    "SiteSettings",
    "TransferSettings",
    "load",
]

SETTINGS_FILE = "settings.yml"


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

    def summary(self) -> dict[str, object]:
        """What the server keeps of these settings (the site's ``settings_summary``): it
        checks a job's stage-in/out locations against ``transfer_locations``."""
        return {
            "scheduler": self.scheduler.name,
            "mpi_launcher": self.launcher.mpi_launcher,
            "transfer_locations": sorted(self.transfer.locations),
            "services": self.services,
        }


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
