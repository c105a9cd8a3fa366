"""The settings the platform layer reads: scheduler, app launcher and nodes, transfers.

They are sections of a site's ``settings.yml`` (runner/site/settings.py composes them
into ``SiteSettings``), defined here so that the schedulers, node discovery and
transfer backends depend on nothing above their own floor.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

from runner.platform.gpus import VISIBILITY_VARIABLES

#: transfer backends a location may name (runner/platform/transfer/).
TRANSFER_BACKENDS = ("local", "globus")


class Section(BaseModel):
    """One section of ``settings.yml``: an unknown key is an error, not ignored."""

    model_config = ConfigDict(extra="forbid")


class NodeShape(Section):
    """What one compute node offers; 0 CPUs means: detect on the node."""

    cpus: int = Field(default=0, ge=0)
    gpus: int = Field(default=0, ge=0)
    #: the GPU ids jobs are given; empty: the allocation's visible list
    #: (CUDA_VISIBLE_DEVICES, ROCR_VISIBLE_DEVICES, ...), else 0 .. gpus-1.
    gpu_ids: list[str] = Field(default_factory=list)

    @field_validator("gpu_ids")
    @classmethod
    def _distinct_ids(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value) or any(not v.strip() or "," in v for v in value):
            raise ValueError(f"GPU ids must be distinct, non-empty and without commas: {value}")
        return value


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
    #: how long to keep trying a server that cannot be reached or answers 5xx (restarting,
    #: its database away), at the start and while no job is held, then stop (0: at once).
    server_wait_sec: float = Field(default=300, ge=0)
    #: jobs that ask for no GPU see none (CUDA_VISIBLE_DEVICES=-1, ROCR/HIP_VISIBLE_DEVICES=-1,
    #: ONEAPI_DEVICE_SELECTOR=*:cpu); false: they inherit the launcher's visibility.
    hide_gpus: bool = True
    #: the variable that hands a job its GPU ids; auto: the one the allocation listed them
    #: in, else ROCR_VISIBLE_DEVICES on an AMD-only node, else CUDA_VISIBLE_DEVICES.
    gpu_variable: str = "auto"

    @field_validator("gpu_variable")
    @classmethod
    def _known_variable(cls, value: str) -> str:
        if value != "auto" and value not in VISIBILITY_VARIABLES:
            raise ValueError(f"{value!r} is not one of auto, {', '.join(VISIBILITY_VARIABLES)}")
        return value


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
