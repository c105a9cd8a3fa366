"""Publishing a run to a tolu server (docs/results.md): where to, and what goes with the document.

Three tools publish through this module: ``pytest --tolu-publish`` (a harness run's
report.json), ``tolu bench ... --publish`` (bench.json) and the integration pipeline (its
report.json, to the server it tested). Each document goes with where it ran (the harness
location), on what (the host), what it tested (the commit) and how busy the machine was
(the load average at its start); the server checks the document against its JSON Schema
and keeps it under one of the user's sites. The same run published twice is one run.

The site (``--tolu-publish-site``, ``tolu bench --site``) is a site directory (its
``settings.yml`` names the site and its server, its ``credentials.yaml`` holds the site
token), or the name or id of a site of your login (``tolu login``); without one, the one
site your login reaches.
"""

from __future__ import annotations

import os
import re
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness import locations
from harness.probes import run_probes
from runner.client import Client
from runner.client.errors import ToluError
from runner.models import Run, RunKind

if TYPE_CHECKING:
    from harness.bench.schema import BenchResult

#: what a run id may hold (runner.models.RUN_ID_PATTERN); anything else becomes "-"
_NOT_IN_RUN_ID = re.compile(r"[^A-Za-z0-9_.:+-]+")


class PublishError(Exception):
    """Publishing cannot be done or failed; the message is one line saying why."""


@dataclass(frozen=True)
class Target:
    """The server, credential and site a run is published to."""

    client: Client
    site_id: int
    site_name: str

    def describe(self) -> str:
        return f"site {self.site_name} (id {self.site_id}) at {self.client.url}"

    def page(self, run: Run) -> str:
        """Where a person reads the published run: its page in the web interface."""
        return f"{self.client.url}/ui/runs/{run.id}"


@dataclass(frozen=True)
class Publication:
    """A document and what goes with it to the server."""

    kind: RunKind
    run_id: str
    started_at: datetime
    document: Mapping[str, Any]
    location: str
    machine: str
    commit: str | None
    load: Sequence[float] = field(default_factory=tuple)

    @classmethod
    def of_report(cls, report: Mapping[str, Any]) -> Publication:
        """A harness run's report.json: it names its location, host, commit and load itself."""
        env = report["environment"]
        return cls(
            kind="tests",
            run_id=report["run_id"],
            started_at=datetime.fromisoformat(report["start"]),
            document=report,
            location=report["location"]["name"],
            machine=env["hostname"],
            commit=env.get("git_commit"),
            load=tuple(env.get("load_average") or ()),
        )

    @classmethod
    def of_bench(cls, result: BenchResult, *, location: str) -> Publication:
        """A bench.json. Its run id is made from the command, the start and the host, so the same
        file published again is the same run."""
        m = result.machine
        stamp = result.created_at.strftime("%Y%m%dT%H%M%S.%fZ")
        return cls(
            kind="bench",
            run_id=_run_id(f"bench-{result.command}-{stamp}-{m.hostname}"),
            started_at=result.created_at,
            document=result.model_dump(mode="json"),
            location=location,
            machine=m.hostname,
            commit=m.git_commit,
            load=tuple(m.load_average),
        )

    @classmethod
    def of_pipeline(
        cls,
        report: Mapping[str, Any],
        *,
        location: str,
        machine: str,
        commit: str | None,
        load: Sequence[float],
    ) -> Publication:
        """The integration pipeline's report.json."""
        return cls(
            kind="pipeline",
            run_id=report["run_id"],
            started_at=datetime.fromisoformat(report["start"]),
            document=report,
            location=location,
            machine=machine,
            commit=commit,
            load=tuple(load),
        )


def _run_id(text: str) -> str:
    return _NOT_IN_RUN_ID.sub("-", text)[:256]


def target(site: str | Path | None = None, *, config: str | Path | None = None) -> Target:
    """Where to publish: ``site`` is a site directory, or a site name or id of the login saved by
    ``tolu login`` (``config``: that file, default ``$TOLU_CONFIG``); None: the login's only site."""
    if site is not None and (Path(site) / "settings.yml").is_file():
        return _site_directory(Path(site))
    try:
        client = Client.from_config(config)
    except ToluError as exc:
        raise PublishError(f"cannot publish: {exc}") from None
    try:
        sites = client.sites.filter()
    except ToluError as exc:
        raise PublishError(f"cannot publish: listing your sites at {client.url} failed: {exc}") from None
    names = ", ".join(sorted(s.name for s in sites)) or "none"
    if site is None:
        if len(sites) != 1:
            raise PublishError(
                f"cannot publish: your login at {client.url} reaches {len(sites)} sites ({names}); "
                "name one (a site directory, name or id)"
            )
        return Target(client, sites[0].id, sites[0].name)
    wanted = str(site)
    for s in sites:
        if s.name == wanted or str(s.id) == wanted:
            return Target(client, s.id, s.name)
    raise PublishError(
        f"cannot publish: {wanted!r} is neither a site directory nor one of your sites "
        f"at {client.url} ({names})"
    )


def _site_directory(site_dir: Path) -> Target:
    from runner.site.connect import site_client
    from runner.site.settings import SettingsError, load

    try:
        settings = load(site_dir)
    except SettingsError as exc:
        raise PublishError(f"cannot publish: {exc}") from None
    if settings.site_id is None:
        raise PublishError(f"cannot publish: {site_dir} is not registered yet (tolu site init {site_dir})")
    try:
        client = site_client(site_dir, settings, retries=3)
    except ToluError as exc:
        raise PublishError(f"cannot publish: {site_dir}: {exc}") from None
    return Target(client, settings.site_id, settings.name)


def publish(to: Target, publication: Publication) -> Run:
    """Keep the run on the server; raises PublishError with the server's reason."""
    p = publication
    try:
        return to.client.runs.publish(
            site_id=to.site_id,
            kind=p.kind,
            run_id=p.run_id,
            location=p.location,
            machine=p.machine,
            started_at=p.started_at,
            document=p.document,
            commit=p.commit,
            load=p.load,
        )
    except ToluError as exc:
        raise PublishError(f"publishing {p.kind} run {p.run_id} to {to.describe()} failed: {exc}") from None


def detect_location(named: str | None = None, files: Sequence[str | Path] = ()) -> str:
    """The harness location here, as a test run would detect it: ``named`` (or $TOLU_LOCATION),
    else the first location (``files`` first, then the shipped ones) whose conditions hold."""
    try:
        registry = locations.load(files)
        named_by = "--location"
        if not named and os.environ.get("TOLU_LOCATION"):
            named, named_by = os.environ["TOLU_LOCATION"], "$TOLU_LOCATION"
        # only the probes that some location's detection asks for
        wanted = sorted({f for loc in registry.locations for f in loc.detect.features})
        found = locations.detect(
            registry,
            hostname=socket.gethostname(),
            probes=run_probes(wanted) if wanted else (),
            named=named,
            named_by=named_by,
        )
    except locations.LocationsError as exc:
        raise PublishError(str(exc)) from None
    return found.location.name
