"""``client.dags``: DAG prototypes — define once (YAML or Python), run many times.

::

    dag = client.dags.builder("pipeline", site=site, parameters={"sample": None, "steps": 100})
    prep = dag.node("prep", app="prepare", parameters={"sample": "{sample}"})
    sims = [dag.node(f"sim{i}", app="simulate", parents=[prep], parameters={"steps": "{steps}", "seed": i})
            for i in range(3)]
    dag.node("reduce", app="reduce", parents=sims)
    pipeline = dag.define()                              # stored; a new version if it changed

    run = client.dags.run(pipeline, [{"sample": s} for s in samples])   # one request
    client.dags.status(run)                              # jobs per state, instances per outcome
    client.dags.wait(run)                                # raises JobsFailed listing failed jobs
    client.dags.kill(run, instance=3)                    # one instance as a unit

The same DAG in YAML is ``client.dags.load("pipeline.yml")`` (or ``tolu dag define``);
docs/dags.md has the format.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from pydantic import ValidationError

from runner.client._base import Manager, _changes
from runner.client.errors import NotFound, ToluError, WaitTimeout
from runner.client.results import JobList
from runner.models import (
    DAG_INSTANCE_TAG,
    DAG_NODE_TAG,
    DAG_RUN_TAG,
    App,
    Dag,
    DagCreate,
    DagInstance,
    DagInstanceState,
    DagRun,
    DagRunStatus,
    KillResult,
    Page,
    Resources,
    Site,
    Tags,
    TransferItemCreate,
)
from runner.states import JobState

if TYPE_CHECKING:
    from runner.client._http import HTTP
    from runner.client.jobs import JobManager

#: seconds a run request may take (it creates up to 100,000 jobs in one transaction).
RUN_TIMEOUT_SEC = 900.0
#: instance states that do not change any more.
ENDED = frozenset({DagInstanceState.FINISHED, DagInstanceState.FAILED, DagInstanceState.KILLED})


class DagDefinitionError(ToluError):
    """A DAG definition file that cannot be read: the file and the field say where."""


class DagBuilder:
    """Build a DAG prototype in Python; ``define()`` stores it on the server."""

    def __init__(
        self,
        manager: DagManager,
        name: str,
        *,
        site: Site | int,
        parameters: Mapping[str, Any] | None = None,
        description: str = "",
    ) -> None:
        self._manager = manager
        self.name = name
        self.site_id = site.id if isinstance(site, Site) else site
        self.parameters = dict(parameters or {})
        self.description = description
        self.nodes: list[dict[str, Any]] = []

    def node(
        self,
        name: str,
        app: App | str,
        *,
        parents: Sequence[str] = (),
        parameters: Mapping[str, Any] | None = None,
        tags: Tags | None = None,
        environment: Mapping[str, str] | None = None,
        resources: Resources | Mapping[str, Any] | None = None,
        retry_limit: int | None = None,
        workdir: str | None = None,
        transfers: Sequence[TransferItemCreate | Mapping[str, Any]] | None = None,
    ) -> str:
        """Add a node (one job per instance); returns its name, to use in ``parents``."""
        self.nodes.append(
            _changes(
                name=name,
                app=app.name if isinstance(app, App) else app,
                parents=list(parents) or None,
                parameters=dict(parameters) if parameters else None,
                tags=dict(tags) if tags else None,
                environment=dict(environment) if environment else None,
                resources=resources,
                retry_limit=retry_limit,
                workdir=workdir,
                transfers=list(transfers) if transfers else None,
            )
        )
        return name

    def spec(self) -> DagCreate:
        return DagCreate.model_validate(
            {
                "name": self.name,
                "site_id": self.site_id,
                "description": self.description,
                "parameters": self.parameters,
                "nodes": [
                    {k: (v.model_dump() if hasattr(v, "model_dump") else v) for k, v in n.items()}
                    for n in self.nodes
                ],
            }
        )

    def define(self) -> Dag:
        return self._manager.define(self.spec())


class _RunPages(Manager):
    """Pages of ``/dag-runs`` (the runs of every DAG)."""

    path = "/dag-runs"


class DagManager(Manager):
    """``client.dags``: DAG prototypes and their runs."""

    path = "/dags"

    def __init__(self, http: HTTP, jobs: JobManager) -> None:
        super().__init__(http)
        self._jobs = jobs
        self._runs = _RunPages(http)

    # ---- prototypes

    def builder(
        self,
        name: str,
        *,
        site: Site | int,
        parameters: Mapping[str, Any] | None = None,
        description: str = "",
    ) -> DagBuilder:
        """A builder for a DAG called ``name`` whose nodes run apps of ``site``."""
        return DagBuilder(self, name, site=site, parameters=parameters, description=description)

    def load(self, path: str | Path, *, site_id: int | None = None) -> DagCreate:
        """Read a DAG definition file (YAML, docs/dags.md). Its site is ``site_id``, else
        the file's ``site_id``, else the site named by its ``site``."""
        file = Path(path)
        try:
            raw = yaml.safe_load(file.read_text())
        except yaml.YAMLError as exc:
            raise DagDefinitionError(f"{file}: not valid YAML: {' '.join(str(exc).split())}") from None
        except OSError as exc:
            raise DagDefinitionError(f"{file}: {exc.strerror or exc}") from None
        if not isinstance(raw, dict):
            raise DagDefinitionError(f"{file}: expected a mapping with name, parameters and nodes")
        doc = dict(raw)
        site_name = doc.pop("site", None)
        if site_id is not None:
            doc["site_id"] = site_id
        elif "site_id" not in doc:
            if site_name is None:
                raise DagDefinitionError(f"{file}: no site: give `site: NAME` in the file (or --site)")
            doc["site_id"] = self._site_named(str(site_name)).id
        try:
            return DagCreate.model_validate(doc)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise DagDefinitionError(f"{file}: {where}: {first['msg']}") from None

    def _site_named(self, name: str) -> Site:
        resp = self._http.request("GET", "/sites", params={"name": name})
        page: Page[Site] = Page[Site].model_validate_json(resp.content)
        if not page.results:
            raise NotFound(404, f"no site named {name!r} (see `tolu site ls`)")
        return page.results[0]

    def define(self, spec: DagCreate | Mapping[str, Any]) -> Dag:
        """Store a DAG: a new version of its name, unless the latest version is the same."""
        result: Dag = self._send("POST", Dag, self.path, spec)
        return result

    def get(self, id: int) -> Dag:
        return self._get_one(Dag, f"{self.path}/{id}")

    def latest(self, name: str, version: int | None = None) -> Dag:
        """The DAG called ``name`` (its latest version, or ``version``)."""
        found = self._follow(Dag, {"name": name, "all_versions": version is not None}, None)
        for dag in found:
            if version is None or dag.version == version:
                return dag
        which = f" version {version}" if version is not None else ""
        raise NotFound(404, f"no DAG named {name!r}{which} (see `tolu dag ls`)")

    def filter(
        self, *, name: str | None = None, site_id: int | None = None, all_versions: bool = False
    ) -> list[Dag]:
        """Your DAGs, newest first (the latest version of each name unless ``all_versions``)."""
        return self._follow(Dag, {"name": name, "site_id": site_id, "all_versions": all_versions}, None)

    def delete(self, dag: Dag | int) -> None:
        """Delete one version (its runs' records go too; their jobs stay)."""
        self._delete(f"{self.path}/{_dag_id(dag)}")

    # ---- runs

    def run(
        self,
        dag: Dag | int,
        instances: Iterable[Mapping[str, Any] | DagInstance],
        *,
        tags: Tags | None = None,
        site_id: int | None = None,
    ) -> DagRun:
        """Instantiate ``dag`` once per element of ``instances`` (each a dict of parameters,
        or a DagInstance with tags too), all jobs in one request, all or nothing."""
        items = [i.model_dump() if isinstance(i, DagInstance) else {"parameters": dict(i)} for i in instances]
        body = _changes(instances=items, tags=tags, site_id=site_id)
        # one transaction for up to MAX_RUN_JOBS jobs: give it longer than a usual request
        timeout = max(self._http.timeout, RUN_TIMEOUT_SEC)
        resp = self._http.request("POST", f"{self.path}/{_dag_id(dag)}/runs", body=body, timeout=timeout)
        return DagRun.model_validate_json(resp.content)

    def runs(
        self, *, dag: Dag | int | None = None, name: str | None = None, limit: int | None = None
    ) -> list[DagRun]:
        """Runs, newest first (of one DAG version, or of every version of ``name``)."""
        dag_id = None if dag is None else _dag_id(dag)
        return self._runs._follow(DagRun, {"dag_id": dag_id, "name": name}, limit)

    def get_run(self, id: int) -> DagRun:
        return self._get_one(DagRun, f"/dag-runs/{id}")

    def status(self, run: DagRun | int, *, detail: bool = False, instance: int | None = None) -> DagRunStatus:
        """Jobs per state and instances per outcome (every instance with ``detail``)."""
        params = {"detail": detail, "instance": instance}
        resp = self._http.request("GET", f"/dag-runs/{_run_id(run)}/status", params=params)
        return DagRunStatus.model_validate_json(resp.content)

    def kill(self, run: DagRun | int, *, instance: int | None = None) -> int:
        """Kill every unfinished job of the run, or of one instance; how many were killed."""
        resp = self._http.request("POST", f"/dag-runs/{_run_id(run)}/kill", params={"instance": instance})
        return KillResult.model_validate_json(resp.content).killed

    def jobs(self, run: DagRun | int, *, instance: int | None = None, node: str | None = None) -> JobList:
        """The run's jobs (of one instance, of one node)."""
        tags = {DAG_RUN_TAG: str(_run_id(run))}
        if instance is not None:
            tags[DAG_INSTANCE_TAG] = str(instance)
        if node is not None:
            tags[DAG_NODE_TAG] = node
        return self._jobs.filter(tags=tags)

    def wait(
        self,
        run: DagRun | int,
        *,
        timeout: float | None = None,
        poll_sec: float = 1.0,
        raise_on_failure: bool = True,
    ) -> DagRunStatus:
        """Block until every instance finished, failed or was killed. A failed or killed
        instance raises JobsFailed listing its failed jobs with their reasons and outputs
        (``raise_on_failure=False`` returns the status instead); WaitTimeout after ``timeout``."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            now = self.status(run)
            pending = {s: n for s, n in now.instances.items() if s not in ENDED}
            if not pending:
                break
            if deadline is not None and time.monotonic() >= deadline:
                shown = ", ".join(f"{n} {s.value}" for s, n in pending.items())
                raise WaitTimeout(f"DAG run {now.run.id}: instances still {shown} after {timeout}s", {})
            time.sleep(poll_sec)
        if raise_on_failure and (now.jobs.get(JobState.FAILED) or now.jobs.get(JobState.KILLED)):
            failed = self._jobs.filter(
                tags={DAG_RUN_TAG: str(now.run.id)}, state=[JobState.FAILED, JobState.KILLED]
            )
            self._jobs.raise_failed(failed)
        return now


def _dag_id(dag: Dag | int) -> int:
    return dag if isinstance(dag, int) else dag.id


def _run_id(run: DagRun | int) -> int:
    return run if isinstance(run, int) else run.id
