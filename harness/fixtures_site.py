"""Site-side fixtures: a registered site with synced apps, job factory, launcher, Slurm."""

from __future__ import annotations

import functools
import shutil
import socket
import subprocess
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import yaml

from harness.evidence import Evidence
from harness.fixtures_server import ServerHandle
from harness.run import run_state
from harness.waiting import wait_for_jobs as _wait_for_jobs

if TYPE_CHECKING:
    from runner.client import Client
    from runner.models import App, Job, Site
    from runner.site.settings import SiteSettings

SITE_SUBDIRS = ("apps", "data", "log", "batch")


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """``override`` merged into ``base``, mappings recursively (pure)."""
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


@dataclass
class SiteHandle:
    """A site directory registered with the server; ``apps`` by name after the sync."""

    path: Path
    site: Site
    settings: SiteSettings
    client: Client
    apps: dict[str, App] = field(default_factory=dict)

    @property
    def id(self) -> int:
        return self.site.id

    def sync_apps(self, folder: Path | None = None) -> dict[str, App]:
        """Copy ``folder`` (if given) into SITE/apps/ and sync SITE/apps/ with the server."""
        from runner.apps import load_apps

        if folder is not None:
            shutil.copytree(folder, self.path / "apps", dirs_exist_ok=True)
        defs = load_apps(self.path / "apps")
        synced = self.client.apps.sync(self.id, [d.to_create(self.id) for d in defs])
        self.apps.update({app.name: app for app in synced})
        return self.apps

    def write_settings(self, **overrides: Any) -> SiteSettings:
        """Change settings.yml (nested keys as dicts) and return the validated settings."""
        from runner.site.settings import SiteSettings

        merged = deep_merge(self.settings.model_dump(mode="json"), overrides)
        self.settings = SiteSettings.model_validate(merged)
        _write_settings(self.path, self.settings)
        return self.settings


def _write_settings(path: Path, settings: SiteSettings) -> None:
    from runner.site.settings import SETTINGS_FILE

    text = "# written by the tolu harness (tolu_site fixture)\n"
    text += yaml.safe_dump(settings.model_dump(mode="json"), sort_keys=False)
    (path / SETTINGS_FILE).write_text(text)


def site_settings_for(config: pytest.Config, *, name: str, server_url: str) -> SiteSettings:
    """SiteSettings for a site made at the current location (its scheduler, launcher, node
    shape and ``site_settings`` overrides)."""
    from runner.site.settings import SiteSettings

    location = run_state(config).detection.location
    base: dict[str, Any] = {
        "name": name,
        "server_url": server_url,
        "scheduler": {"name": location.scheduler},
        "launcher": {
            "mpi_launcher": location.mpi_launcher,
            "node": {"cpus": location.node.cpus, "gpus": location.node.gpus},
        },
    }
    return SiteSettings.model_validate(deep_merge(base, location.site_settings))


@pytest.fixture
def tolu_apps_dir(request: pytest.FixtureRequest) -> Path | None:
    """Folder of app definitions synced into ``tolu_site``: ``apps/`` next to the test module
    if there is one. Override this fixture in a conftest.py to use another."""
    folder = request.path.parent / "apps"
    return folder if folder.is_dir() else None


@pytest.fixture
def tolu_site(
    request: pytest.FixtureRequest,
    tolu_client: Client,
    tolu_server: ServerHandle,
    tolu_apps_dir: Path | None,
    tolu_evidence: Evidence,
    tmp_path: Path,
) -> SiteHandle:
    """A site directory (settings.yml for this location) registered with the server,
    with the apps of ``tolu_apps_dir`` synced."""
    path = tmp_path / "site"
    for sub in SITE_SUBDIRS:
        (path / sub).mkdir(parents=True, exist_ok=True)
    name = f"site-{uuid.uuid4().hex[:8]}"
    settings = site_settings_for(request.config, name=name, server_url=tolu_server.url)
    site = tolu_client.sites.create(
        name=name,
        path=str(path),
        hostname=socket.gethostname(),
        settings_summary={
            "scheduler": settings.scheduler.name,
            "mpi_launcher": settings.launcher.mpi_launcher,
        },
    )
    settings = settings.model_copy(update={"site_id": site.id})
    _write_settings(path, settings)
    tolu_evidence.add_site(path)
    handle = SiteHandle(path=path, site=site, settings=settings, client=tolu_client)
    if tolu_apps_dir is not None:
        handle.sync_apps(tolu_apps_dir)
    return handle


MakeJobs = Callable[..., list["Job"]]


@pytest.fixture
def make_jobs(tolu_site: SiteHandle, tolu_client: Client) -> MakeJobs:
    """``make_jobs(app, n=1, *, parameters=None, tags=None, resources=None, parents=(), **fields)``.

    ``app`` is an App, its id or its name in ``tolu_site``; ``parameters`` is one dict for
    all jobs or a list with one per job; ``parents`` are jobs or ids. One bulk request.
    """

    def make(
        app: App | int | str,
        n: int = 1,
        *,
        parameters: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None = None,
        tags: Mapping[str, str] | None = None,
        resources: Mapping[str, Any] | None = None,
        parents: Iterable[Job | int] = (),
        **fields: Any,
    ) -> list[Job]:
        app_id = _app_id(tolu_site, tolu_client, app)
        per_job = [dict(p) for p in parameters] if isinstance(parameters, Sequence) else None
        shared: dict[str, Any] = dict(parameters) if isinstance(parameters, Mapping) else {}
        if per_job is not None:
            n = len(per_job)
        parent_ids = [p if isinstance(p, int) else p.id for p in parents]
        specs = []
        for index in range(n):
            spec: dict[str, Any] = {
                "app_id": app_id,
                "parents": parent_ids,
                "tags": dict(tags or {}),
                **fields,
            }
            spec["parameters"] = per_job[index] if per_job is not None else dict(shared)
            if resources is not None:
                spec["resources"] = dict(resources)
            specs.append(spec)
        jobs: list[Job] = tolu_client.jobs.bulk_create(specs)
        return jobs

    return make


def _app_id(site: SiteHandle, client: Client, app: App | int | str) -> int:
    if isinstance(app, int):
        return app
    if isinstance(app, str):
        if app not in site.apps:
            found = client.apps.filter(site_id=site.id, name=app)
            if not found:
                known = ", ".join(sorted(site.apps)) or "none"
                raise LookupError(f"no app {app!r} in site {site.site.name} (synced: {known})")
            site.apps[app] = found[0]
        return site.apps[app].id
    return app.id


StartLauncher = Callable[..., Any]


@pytest.fixture
def tolu_launcher(
    request: pytest.FixtureRequest, tolu_site: SiteHandle, tolu_evidence: Evidence
) -> Iterator[StartLauncher]:
    """``tolu_launcher(mode="serial", **opts)`` starts ``tolu launcher`` on ``tolu_site``
    (runner.launcher.process.LauncherProcess); every launcher started is stopped by PID
    at the end of the test, and its log kept with the test's evidence."""
    state = run_state(request.config)
    started: list[tuple[Any, Any]] = []

    def start(mode: str = "serial", **opts: Any) -> Any:
        if mode == "mpi":
            state.need("mpi")
        from runner.launcher.process import LauncherProcess

        launcher = LauncherProcess(tolu_site.path, mode, **opts)
        launcher.start()
        daemon = state.track(f"tolu launcher ({mode})", launcher.pid or -1, launcher.stop)
        started.append((launcher, daemon))
        log = getattr(launcher, "log_path", None)
        if log is not None and Path(log).parent != tolu_site.path / "log":
            tolu_evidence.add_log(f"launcher-{mode}-{len(started)}", Path(log))
        return launcher

    yield start
    for launcher, daemon in reversed(started):
        try:
            launcher.stop()
        finally:
            state.untrack(daemon)


@dataclass(frozen=True)
class SlurmInfo:
    """The local Slurm as ``sinfo`` describes it."""

    partitions: tuple[str, ...]
    default_partition: str
    nodes: int
    cpus_per_node: int

    def squeue(self, job_ids: Iterable[str]) -> dict[str, str]:
        """scheduler id -> Slurm state of the given jobs that are still queued or running."""
        ids = ",".join(job_ids)
        if not ids:
            return {}
        out = subprocess.run(
            ["squeue", "--noheader", "--format=%i %T", "--jobs", ids],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        ).stdout
        return dict(line.split(None, 1) for line in out.splitlines() if line.strip())


@pytest.fixture(scope="session")
def slurm(request: pytest.FixtureRequest) -> SlurmInfo:
    """The local Slurm, when this location has one (skipped, or failed under --require slurm)."""
    run_state(request.config).need("slurm")
    done = subprocess.run(
        ["sinfo", "--noheader", "--format=%P %D %c"], capture_output=True, text=True, timeout=30, check=False
    )
    if done.returncode != 0:
        pytest.fail(f"sinfo exit {done.returncode}: {done.stderr.strip()}", pytrace=False)
    partitions: list[str] = []
    default, nodes, cpus = "", 0, 0
    for line in done.stdout.splitlines():
        parts = line.split()
        if len(parts) < 3:
            continue
        name = parts[0].rstrip("*")
        partitions.append(name)
        if parts[0].endswith("*") or not default:
            default = name
        nodes = max(nodes, int(parts[1]) if parts[1].isdigit() else 0)
        cpus = max(cpus, int(parts[2].rstrip("+")) if parts[2].rstrip("+").isdigit() else 0)
    return SlurmInfo(tuple(partitions), default, nodes, cpus)


@pytest.fixture
def wait_for_jobs(tolu_evidence: Evidence) -> Callable[..., list[Job]]:
    """``wait_for_jobs(client, jobs, states=("JOB_FINISHED",), timeout=60)`` (harness.waiting);
    failures show the output of failed jobs of the test's sites."""
    return functools.partial(_wait_for_jobs, site_dirs=tolu_evidence.sites)
