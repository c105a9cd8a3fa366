"""The tolu harness as a pytest plugin; off until a project turns it on.

The ``pytest11`` entry point is only the switch (pytest_tolu.py): ``--tolu`` or the
ini key ``tolu = true`` load this module before the command line is parsed;
``-p harness.plugin`` or ``pytest_plugins = ["harness.plugin"]`` load it directly.

Built like pytest's own plugins (``_pytest/skipping.py``): options in
``pytest_addoption``, markers with usage text in ``pytest_configure``, per-run and
per-test state in the stash, marks evaluated by pure functions (harness.selection)
that return small frozen verdicts. The fixtures live in harness.fixtures_*.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Generator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from harness import locations as _locations
from harness import publish
from harness.artifacts import new_run_id
from harness.fixtures_server import (
    expected_errors,
    make_user,
    postgres_url,
    tolu_client,
    tolu_database,
    tolu_evidence,
    tolu_server,
)
from harness.fixtures_site import (
    make_jobs,
    slurm,
    tolu_apps_dir,
    tolu_launcher,
    tolu_site,
    wait_for_jobs,
)
from harness.markers import AREAS, OTHER_MARKERS, SUITES_DIR, folder_areas
from harness.probes import run_probes
from harness.report import RUN_DIR_PREFIX
from harness.run import RunState, fail_or_skip, item_info, reports_key, run_key, run_state, unavailable_key
from harness.selection import evaluate_location_marks, evaluate_requires_marks, parse_required
from runner import extras

__all__ = [
    "expected_errors",
    "make_jobs",
    "make_user",
    "postgres_url",
    "slurm",
    "tolu_apps_dir",
    "tolu_client",
    "tolu_database",
    "tolu_evidence",
    "tolu_launcher",
    "tolu_server",
    "tolu_site",
    "wait_for_jobs",
]

DATABASES = ("sqlite", "postgresql")
#: how the terminal summary says where the report was published, or why it was not.
PUBLISHED_PREFIX = "tolu published: "
PUBLISH_FAILED_PREFIX = "tolu publish FAILED: "
#: areas whose server tests run on every database unless --database says otherwise.
ALL_DATABASE_AREAS = frozenset({"server", "api"})


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("tolu", "tolu harness: locations, components, servers, artifacts")
    group.addoption(
        "--location",
        metavar="NAME",
        help="name the location instead of detecting it (env TOLU_LOCATION).",
    )
    group.addoption(
        "--locations",
        metavar="FILE",
        action="append",
        default=[],
        help="a locations YAML file to add to the shipped ones (repeatable; ini tolu_locations).",
    )
    group.addoption(
        "--require",
        metavar="FEATURES",
        help="comma-separated features (docker,slurm,postgres,...) whose absence fails the tests "
        "that need them instead of skipping them (env TOLU_REQUIRE).",
    )
    group.addoption(
        "--server",
        metavar="process|container|URL",
        default="process",
        help="how tolu_server gets a server: a local process (default), the server container, "
        "or the URL of a running server.",
    )
    group.addoption("--server-url", metavar="URL", help="same as --server URL.")
    group.addoption(
        "--database",
        metavar="sqlite|postgresql",
        help="database of servers the harness starts (comma-separated for several); default: "
        "sqlite, and both in suites/server and suites/api.",
    )
    group.addoption(
        "--artifacts-dir",
        metavar="DIR",
        help="root of the artifact folders (default: <rootdir>/artifacts; ini tolu_artifacts_dir).",
    )
    group.addoption(
        "--tolu-publish",
        action="store_true",
        default=False,
        help="when the run ends, keep its report.json on your tolu server (the login of `tolu login`, "
        "or a site directory's token): the web interface's site x area matrix and history "
        "(docs/results.md).",
    )
    group.addoption(
        "--tolu-publish-site",
        metavar="SITE",
        help="the site to publish under: a site directory, or the name or id of a site of your login "
        "(env TOLU_PUBLISH_SITE, ini tolu_publish_site; default: your login's only site). Write "
        "--tolu-publish-site=DIR: a path after a space would also be taken as where the tests are.",
    )
    parser.addini("tolu_locations", type="paths", default=[], help="locations YAML files to add.")
    parser.addini("tolu_publish_site", default="", help="the site --tolu-publish publishes under.")
    parser.addini("tolu_artifacts_dir", default="artifacts", help="root of the artifact folders.")
    parser.addini("tolu_suites_dir", default=SUITES_DIR, help="folder whose sub-folders are areas.")


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    try:
        extras.require_extra("harness", "the tolu harness (pytest plugin)")
    except extras.MissingExtra as exc:
        raise pytest.UsageError(str(exc)) from None
    for name, usage in AREAS.items():
        config.addinivalue_line("markers", f"{name}: {usage}")
    for usage in OTHER_MARKERS.values():
        config.addinivalue_line("markers", usage)
    config.stash[run_key] = _make_run_state(config)


def _make_run_state(config: pytest.Config) -> RunState:
    workerinput: dict[str, Any] | None = getattr(config, "workerinput", None)
    files = [*config.getini("tolu_locations"), *config.getoption("locations")]
    try:
        registry = _locations.load(files)
    except _locations.LocationsError as exc:
        raise pytest.UsageError(str(exc)) from None
    if config.getoption("database"):
        parse_databases(config.getoption("database"))
    required = parse_required(config.getoption("require"))
    unknown = sorted(required - registry.known_features())
    if unknown:
        known = ", ".join(sorted(registry.known_features()))
        raise pytest.UsageError(f"--require: unknown feature {unknown[0]!r} (known: {known})")
    if workerinput is not None and "tolu" in workerinput:
        shared = workerinput["tolu"]
        return RunState(
            run_id=shared["run_id"],
            run_dir=Path(shared["run_dir"]),
            registry=registry,
            detection=_locations.Detection.from_json(shared["detection"]),
            required=required,
            started=datetime.fromisoformat(shared["started"]),
            is_worker=True,
            worker_id=str(workerinput.get("workerid", "worker")),
        )
    named, named_by = config.getoption("location"), "--location"
    if not named and os.environ.get("TOLU_LOCATION"):
        named, named_by = os.environ["TOLU_LOCATION"], "$TOLU_LOCATION"
    try:
        detection = _locations.detect(
            registry, hostname=socket.gethostname(), probes=run_probes(), named=named, named_by=named_by
        )
    except _locations.LocationsError as exc:
        raise pytest.UsageError(str(exc)) from None
    started = datetime.now(UTC)
    run_id = os.environ.get("TOLU_RUN_ID") or new_run_id(started)
    root = config.getoption("artifacts_dir") or config.getini("tolu_artifacts_dir")
    run_dir = (config.rootpath / root / run_id).resolve()
    state = RunState(
        run_id, run_dir, registry, detection, required, started, is_worker=workerinput is not None
    )
    # Runs that run no tests (--collect-only, --markers, --fixtures, --help) leave no folder.
    informational = ("collectonly", "markers", "showfixtures", "show_fixtures_per_test", "help", "version")
    state.writes_artifacts = not state.is_worker and not any(
        getattr(config.option, name, False) for name in informational
    )
    if state.writes_artifacts:
        run_dir.mkdir(parents=True, exist_ok=True)
        if not config.option.xmlpath:
            # junitxml reads this in its own pytest_configure, which runs after ours (tryfirst).
            config.option.xmlpath = str(run_dir / "junit.xml")
        state.junit_path = Path(config.option.xmlpath).resolve()
        if config.getoption("tolu_publish"):
            # before the run, so that a wrong site or a missing login stops it at once
            site = (
                config.getoption("tolu_publish_site")
                or os.environ.get("TOLU_PUBLISH_SITE")
                or config.getini("tolu_publish_site")
                or None
            )
            try:
                state.publish_to = publish.target(site)
            except publish.PublishError as exc:
                raise pytest.UsageError(f"--tolu-publish: {exc}") from None
    return state


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """xdist controller -> worker: one run id, one artifact folder, one detection."""
    state = run_state(node.config)
    node.workerinput["tolu"] = {
        "run_id": state.run_id,
        "run_dir": str(state.run_dir),
        "detection": state.detection.to_json(),
        "started": state.started.isoformat(),
    }


def pytest_report_header(config: pytest.Config) -> list[str]:
    state = run_state(config)
    det = state.detection
    present = ", ".join(sorted(p.feature for p in det.probes if p.present)) or "none"
    absent = "; ".join(f"{p.feature} ({p.detail})" for p in det.probes if not p.present) or "none"
    lines = [
        f"tolu location: {det.location.name} ({det.reason})",
        f"tolu features present: {present}",
        f"tolu features absent: {absent}",
    ]
    expected_absent = sorted(set(det.location.features) - det.features)
    if expected_absent:
        lines.append(f"tolu WARNING: location {det.location.name} expects {', '.join(expected_absent)}")
    if state.required:
        missing = state.missing_required()
        lines.append(
            f"tolu required: {', '.join(sorted(state.required))}"
            + (f" -- MISSING: {', '.join(missing)}" if missing else " (all present)")
        )
    if state.writes_artifacts:
        lines.append(f"tolu artifacts: {state.run_dir}")
    return lines


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark each test by its folder before ``-m`` deselects (hence tryfirst)."""
    suites = config.getini("tolu_suites_dir")
    for item in items:
        for area in folder_areas(item.path, config.rootpath, suites):
            if item.get_closest_marker(area) is None:
                item.add_marker(area)


def parse_databases(option: str) -> list[str]:
    chosen = [d.strip() for d in option.split(",") if d.strip()]
    bad = [d for d in chosen if d not in DATABASES]
    if bad or not chosen:
        raise pytest.UsageError(f"--database: unknown database {option!r} (known: {', '.join(DATABASES)})")
    return chosen


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Run server tests of suites/server and suites/api on every database."""
    if "tolu_database" not in metafunc.fixturenames:
        return
    config = metafunc.config
    if (config.getoption("server_url") or config.getoption("server")) not in ("process", "container"):
        return  # an existing server has the one database it has
    option = config.getoption("database")
    if option:
        chosen = parse_databases(option)
    else:
        areas = set(folder_areas(metafunc.definition.path, config.rootpath, config.getini("tolu_suites_dir")))
        areas |= {m.name for m in metafunc.definition.iter_markers()}
        chosen = list(DATABASES) if areas & ALL_DATABASE_AREAS else ["sqlite"]
    only = {db for mark in metafunc.definition.iter_markers("databases") for db in mark.args}
    if unknown := sorted(only - set(DATABASES)):
        known = ", ".join(DATABASES)
        pytest.fail(f"databases(): unknown {', '.join(unknown)} (known: {known})", pytrace=False)
    if only:
        # none left (``--database sqlite`` for a PostgreSQL-only test): pytest skips it
        chosen = [db for db in (chosen if option else DATABASES) if db in only]
    elif len(chosen) == 1:
        return  # tolu_database answers --database (or sqlite) itself; no "[sqlite]" in every test id
    params = [
        pytest.param(db, marks=pytest.mark.requires("postgres"), id=db)
        if db == "postgresql"
        else pytest.param(db, id=db)
        for db in chosen
    ]
    metafunc.parametrize("tolu_database", params, indirect=True, scope="session")


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    state = run_state(item.config)
    marks = list(item.iter_markers())
    verdict = evaluate_location_marks(marks, state.detection) or evaluate_requires_marks(
        marks, state.detection, state.required
    )
    item.stash[unavailable_key] = verdict
    fail_or_skip(verdict)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, Any]:
    report: pytest.TestReport = yield
    longrepr = report.longrepr
    if report.skipped and isinstance(longrepr, tuple) and Path(longrepr[0]).name == "run.py":
        # Skipped by a location/requires mark or a fixture's need(): point at the test, not
        # at harness/run.py where the skip was raised (as _pytest/skipping.py does).
        filename, line = item.reportinfo()[:2]
        report.longrepr = (str(filename), (line or 0) + 1, longrepr[2])
    report.tolu = item_info(item)  # type: ignore[attr-defined]
    item.stash.setdefault(reports_key, {})[report.when] = report
    return report


@pytest.hookimpl(trylast=True)
def pytest_sessionstart(session: pytest.Session) -> None:
    session.config.pluginmanager.register(_Reporter(session.config), "tolu-reporter")


class _Reporter:
    """Collects reports and writes report.json/report.html where the whole run is seen."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.state = run_state(config)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        # Under xdist the controller sees every worker's reports here too.
        if not self.state.is_worker:
            self.state.recorder.add(report)

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        state = self.state
        stopped = state.stop_leftover_daemons()
        if not state.writes_artifacts:
            return
        from harness.report import build_report, write_report

        report = build_report(
            self.config, state, ended=datetime.now(UTC), exitstatus=int(exitstatus), leftover_daemons=stopped
        )
        self.report = report
        write_report(state.run_dir, report)
        missing = state.missing_required()
        if missing and session.exitstatus in (pytest.ExitCode.OK, pytest.ExitCode.NO_TESTS_COLLECTED):
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
        if state.publish_to is not None:
            try:
                self.published: Any = publish.publish(state.publish_to, publish.Publication.of_report(report))
            except publish.PublishError as exc:
                self.published = exc
                # the run asked for its report to be kept and it was not: that is a failed run
                if session.exitstatus in (pytest.ExitCode.OK, pytest.ExitCode.NO_TESTS_COLLECTED):
                    session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        state = self.state
        if not state.writes_artifacts:
            return
        report: dict[str, Any] | None = getattr(self, "report", None)
        tr = terminalreporter
        missing = state.missing_required()
        if missing:
            tr.write_sep("=", "tolu: required components missing", red=True)
            for feature in missing:
                tr.write_line(f"  {state.detection.absent_reason(feature)}")
        if report is not None and report["log_errors"]["unexpected"]:
            tr.write_sep("=", "tolu: unexpected ERROR lines in collected logs", yellow=True)
            for entry in report["log_errors"]["entries"]:
                if not entry["expected"]:
                    tr.write_line(
                        f"  {entry['nodeid']}: {entry['file']}:{entry['line']}: {entry['text'][:200]}"
                    )
                    if entry.get("cause"):
                        tr.write_line(f"    the traceback under it ends: {entry['cause'][:300]}")
        tr.write_sep("-", "tolu artifacts")
        tr.write_line(f"{RUN_DIR_PREFIX}{state.run_dir}")
        if report is not None:
            tr.write_line(f"tolu report: {state.run_dir / 'report.html'}")
        published = getattr(self, "published", None)
        if isinstance(published, publish.PublishError):
            tr.write_line(f"{PUBLISH_FAILED_PREFIX}{published}", red=True)
        elif published is not None and state.publish_to is not None:
            tr.write_line(f"{PUBLISHED_PREFIX}{state.publish_to.page(published)}")


def pytest_unconfigure(config: pytest.Config) -> None:
    state = config.stash.get(run_key, None)
    if state is not None:
        state.stop_leftover_daemons()
