"""report.json: the versioned, machine-readable account of one run.

The schema is ``harness/report.schema.json`` (JSON Schema 2020-12); bump
``SCHEMA_VERSION`` on any incompatible change and keep the file in step.
"""

from __future__ import annotations

import importlib.metadata
import json
import platform
import socket
import subprocess
import sys
from collections.abc import Iterable
from datetime import datetime
from html import escape
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from harness.artifacts import read_evidence
from harness.markers import AREAS
from harness.probes import mpi_version

if TYPE_CHECKING:
    from harness.run import RunState

SCHEMA_VERSION = "1.2"
SCHEMA_RESOURCE = "report.schema.json"
#: how a run names its artifact folder in the terminal summary.
RUN_DIR_PREFIX = "tolu artifacts: "


def schema() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((Path(__file__).parent / SCHEMA_RESOURCE).read_text())
    return data


def validate(report: dict[str, Any]) -> None:
    """Raise ``jsonschema.ValidationError`` unless ``report`` matches the schema."""
    import jsonschema

    jsonschema.validate(report, schema(), cls=jsonschema.Draft202012Validator)


def _git_commit(root: Path) -> str | None:
    try:
        done = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return (done.stdout.strip() or None) if done.returncode == 0 else None


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def environment(config: pytest.Config, state: RunState) -> dict[str, Any]:
    location = state.detection.location
    databases = set(state.databases)
    for ev in read_evidence(state.run_dir).values():
        databases.update(s.get("database", "") for s in ev.get("servers", []))
    return {
        "hostname": socket.gethostname(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "python_implementation": platform.python_implementation(),
        "pytest": pytest.__version__,
        "tolu": _version("tolu"),
        "git_commit": _git_commit(config.rootpath),
        "mpi": mpi_version() or None,
        "scheduler": location.scheduler,
        "mpi_launcher": location.mpi_launcher,
        "databases": sorted(d for d in databases if d),
        "xdist_workers": getattr(config.option, "numprocesses", None) or 0,
        "args": list(config.invocation_params.args),
        "load_average": list(state.load_average),
    }


def build_report(
    config: pytest.Config,
    state: RunState,
    *,
    ended: datetime,
    exitstatus: int,
    leftover_daemons: list[str] | None = None,
) -> dict[str, Any]:
    evidence = read_evidence(state.run_dir)
    tests = [rec.to_json(evidence.get(nodeid)) for nodeid, rec in state.recorder.records.items()]
    entries: list[dict[str, Any]] = []
    for test in tests:
        for line in (test["evidence"] or {}).get("error_lines", []):
            entries.append({"nodeid": test["nodeid"], **line})
    unexpected = sum(1 for e in entries if not e["expected"])
    det = state.detection
    counts = state.recorder.counts()
    return {
        "schema_version": SCHEMA_VERSION,
        "run_id": state.run_id,
        "start": state.started.isoformat(),
        "end": ended.isoformat(),
        "duration": round((ended - state.started).total_seconds(), 3),
        "exitstatus": exitstatus,
        "areas": list(AREAS),
        "location": {
            "name": det.location.name,
            "reason": det.reason,
            "description": det.location.description,
            "scheduler": det.location.scheduler,
            "mpi_launcher": det.location.mpi_launcher,
            "node": det.location.node.model_dump(),
            "declared_features": sorted(det.location.features),
            "features": sorted(det.features),
            "probes": [{"feature": p.feature, "present": p.present, "detail": p.detail} for p in det.probes],
            "sources": list(state.registry.sources),
        },
        "required": {"features": sorted(state.required), "missing": state.missing_required()},
        "environment": environment(config, state),
        "summary": {
            "total": len(tests),
            **{k: counts.get(k, 0) for k in ("passed", "failed", "error", "skipped", "xfailed", "xpassed")},
        },
        "flagged": bool(unexpected),
        "log_errors": {"unexpected": unexpected, "entries": entries[:1000]},
        "leftover_daemons": leftover_daemons or [],
        "artifacts": {
            "dir": str(state.run_dir),
            "junit": str(state.junit_path) if state.junit_path else None,
            "html": "report.html",
            "server_logs": sorted(
                str(p.relative_to(state.run_dir)) for p in (state.run_dir / "servers").glob("*.log")
            ),
        },
        "tests": tests,
    }


def read(run_dir: Path) -> dict[str, Any]:
    """The report.json of a run folder."""
    data: dict[str, Any] = json.loads((Path(run_dir) / "report.json").read_text())
    return data


def printed_run_dir(lines: Iterable[str]) -> Path:
    """The artifact folder a run printed at its end (``tolu artifacts: DIR``)."""
    found = [line.removeprefix(RUN_DIR_PREFIX) for line in lines if line.startswith(RUN_DIR_PREFIX)]
    if not found:
        raise LookupError("no 'tolu artifacts:' line in the output")
    return Path(found[-1])


def records_by_name(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The report's tests by function name (no module, no parameters)."""
    return {t["nodeid"].split("::")[-1].split("[")[0]: t for t in report["tests"]}


def write_report(run_dir: Path, report: dict[str, Any]) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "report.json").write_text(json.dumps(report, indent=1, default=str))
    from harness.html import render

    try:
        html = render(report, run_dir)
    except Exception as exc:  # the JSON is the record; a broken page must not hide it
        failure = escape(f"{type(exc).__name__}: {exc}")
        html = f"<!doctype html><title>tolu report</title><p>report.html failed: {failure}"
    (run_dir / "report.html").write_text(html)
