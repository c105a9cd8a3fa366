"""The site directory: layout, the commented default settings, the agent's pid file.

::

    SITE/
      settings.yml   validated by runner/site/settings.py
      apps/          app definitions (*.yml, *.py), read by runner/apps/
      data/          job workdirs (data/<job.workdir>/, job output in job.out)
      log/           agent.log, agent.pid, launcher logs (one file per process)
      batch/         rendered batch scripts and their output
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from runner.daemon import PidFile
from runner.site.settings import SETTINGS_FILE

SUBDIRS = ("apps", "data", "log", "batch")
PID_FILE = "agent.pid"
LOG_FILE = "agent.log"
SCHEDULERS = ("local", "slurm", "pbs", "cobalt", "lsf")

#: The default settings.yml, every key explained. ``{name}``, ``{server_url}``,
#: ``{scheduler}`` and ``{mpi_launcher}`` are filled in by ``tolu site init``.
SETTINGS_TEMPLATE = """\
# tolu site settings. Validated when the agent or a launcher starts: a bad value
# stops `tolu site start` with this file, the key and what is wrong.
# Durations are in seconds (_sec) or minutes (_min).

# Filled in by `tolu site init` when the site is registered with the server.
site_id: null
# Name of the site on the server (unique per user).
name: {name}
# Server URL; empty: the URL saved by `tolu login` ($TOLU_CONFIG or ~/.config/tolu).
server_url: "{server_url}"

# Agent services to run (the heartbeat always runs). queue_maintainer and
# autoscaler also need `enabled: true` in their sections below.
services: [processing, transfer, scheduler, queue_maintainer, autoscaler]

scheduler:
  # Batch scheduler: local (batch scripts run as detached processes on this
  # machine) | slurm | pbs | cobalt | lsf
  name: {scheduler}
  # Seconds between status polls (one query for all of the site's batch jobs).
  poll_interval_sec: 10.0
  # Extra options rendered into every batch script, e.g. {{constraint: knl}}.
  options: {{}}
  # Commands run at the top of every batch script (module loads, conda activate).
  prelude: []
  # Account/project and queue used when a batch job names none.
  default_project: ""
  default_queue: ""

launcher:
  # How MPI jobs start: mpich | openmpi | srun | local
  mpi_launcher: {mpi_launcher}
  # Path or name of the MPI start command; empty: the launcher's default.
  mpiexec: ""
  # Extra arguments for every MPI start (a list, never a shell string).
  mpi_args: []
  # What one compute node offers; cpus 0 = detect on the node.
  node:
    cpus: 0
    gpus: 0
    # The GPU ids jobs are given; empty: the allocation's visible list
    # (CUDA_VISIBLE_DEVICES, ROCR_VISIBLE_DEVICES, ...), else 0 .. gpus-1.
    gpu_ids: []
  # Where the allocation's node list comes from: auto | slurm | pbs | cobalt | hostfile | local
  node_discovery: auto
  # With node_discovery: hostfile, the file listing one host per line.
  hostfile: ""
  # Seconds between session heartbeats (the session expires after 3 missed).
  heartbeat_sec: 10.0
  # Serial mode: jobs fetched per worker slot beyond those running.
  prefetch: 2
  # Seconds between batched status reports to the server.
  report_interval_sec: 0.5
  # Stop the launcher after this many idle seconds (0: never).
  idle_timeout_sec: 0
  # Keep trying a server that cannot be reached or answers 5xx for this many
  # seconds, at the start and while no job is held, then stop (0: give up at once).
  server_wait_sec: 300
  # Jobs that ask for no GPU see none (CUDA_VISIBLE_DEVICES=-1, ...); false: they
  # inherit the launcher's visibility.
  hide_gpus: true
  # The variable that hands a job its GPU ids; auto: the one the allocation listed
  # them in, else ROCR_VISIBLE_DEVICES on an AMD-only node, else CUDA_VISIBLE_DEVICES.
  gpu_variable: auto

transfer:
  # Location alias -> "backend:endpoint". A job's transfer item names its remote
  # end as ALIAS:PATH. Backends: local (this filesystem; an endpoint path is a
  # root the remote paths are taken under) | globus (endpoint = collection uuid).
  locations:
    local: "local:"
  # Items per transfer task (one Globus task or one local copy batch).
  max_items_per_task: 200
  # Tasks in flight per location.
  max_concurrent_tasks: 5
  # Retries of a failed task before its items (and so their jobs) fail.
  retry_limit: 3
  # Pause before the first retry; doubles with each further one.
  retry_backoff_sec: 5.0
  # Seconds between rounds of the transfer service.
  poll_interval_sec: 5.0
  globus:
    # This site's own Globus collection (the local end of every Globus task).
    local_endpoint_id: ""
    # Confidential app credentials: client id here, secret in this environment variable.
    client_id: ""
    client_secret_env: TOLU_GLOBUS_CLIENT_SECRET
    # Or an access token for the Transfer API in this environment variable.
    access_token_env: TOLU_GLOBUS_TOKEN

processing:
  # Threads running app hooks (preprocess, postprocess, handle_error, handle_timeout).
  workers: 2
  # Seconds between rounds of the processing service.
  poll_interval_sec: 2.0

queue_maintainer:
  # Keep `depth` batch jobs of this shape queued while there are runnable jobs.
  enabled: false
  depth: 1
  num_nodes: 1
  wall_time_min: 10
  # Launcher mode inside each batch job: mpi | serial
  job_mode: mpi
  queue: ""
  project: ""
  # Only jobs with all of these tags run in these batch jobs.
  filter_tags: {{}}
  poll_interval_sec: 5.0

autoscaler:
  # Size allocations to the backlog of runnable jobs (see docs/autoscaler.md).
  enabled: false
  # Decision policy: backlog
  policy: backlog
  min_nodes: 1
  max_nodes: 1
  # Cap on the nodes of all allocations together (null: what the scheduler can give).
  max_total_nodes: null
  min_wall_time_min: 10
  max_wall_time_min: 60
  # Most allocations queued (not yet running) at once.
  max_queued: 1
  # Withdraw a queued allocation after this many minutes (0: never).
  max_queue_wait_min: 0
  # Release reserved nodes idle this long.
  idle_timeout_min: 5
  job_mode: mpi
  queue: ""
  project: ""
  poll_interval_sec: 10.0
"""

_MPI_LAUNCHER = {"slurm": "srun"}


def render_settings(*, name: str, scheduler: str = "local", server_url: str = "") -> str:
    """The commented default settings.yml for a new site."""
    if scheduler not in SCHEDULERS:
        raise ValueError(f"unknown scheduler {scheduler!r} (one of {', '.join(SCHEDULERS)})")
    return SETTINGS_TEMPLATE.format(
        name=_yaml_str(name),
        server_url=server_url.replace('"', ""),
        scheduler=scheduler,
        mpi_launcher=_MPI_LAUNCHER.get(scheduler, "mpich"),
    )


def _yaml_str(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def make_layout(site_dir: Path) -> None:
    for sub in SUBDIRS:
        (site_dir / sub).mkdir(parents=True, exist_ok=True)


def set_site_id(site_dir: Path, site_id: int) -> None:
    """Record ``site_id`` in settings.yml, keeping its comments."""
    path = site_dir / SETTINGS_FILE
    text = path.read_text()
    new, n = re.subn(r"(?m)^site_id:.*$", f"site_id: {site_id}", text, count=1)
    if n == 0:
        new = f"site_id: {site_id}\n" + text
    tmp = path.with_suffix(".yml.tmp")
    tmp.write_text(new)
    os.replace(tmp, path)


def pid_path(site_dir: Path) -> Path:
    return site_dir / "log" / PID_FILE


def pid_file(site_dir: Path) -> PidFile:
    """The agent's pid file: its pid and start time, so a recycled pid is never taken for it."""
    return PidFile(pid_path(site_dir))


def log_path(site_dir: Path) -> Path:
    return site_dir / "log" / LOG_FILE


def running_pid(site_dir: Path) -> int | None:
    """The pid of this site's running agent, or None (a stale pid file is ignored)."""
    return pid_file(site_dir).running()
