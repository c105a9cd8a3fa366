"""Documents to publish in the server's tests: valid against their schemas, with chosen contents.

The harness writes the real ones (suites/harness/test_publish.py publishes those); here a test
chooses each test's outcome, each figure's median and each step, and the documents are checked
against the harness's own schemas before they are sent, so a test cannot pass on a document
the harness would never write.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jsonschema

from harness.bench.schema import (
    BenchResult,
    Check,
    FigureInfo,
    Machine,
    Scenario,
    Stat,
    Trial,
    Verdict,
)
from harness.report import schema as report_schema

PIPELINE_SCHEMA = Path(__file__).resolve().parents[2] / "harness" / "pipeline" / "report.schema.json"
T0 = datetime(2026, 11, 20, 2, 0, tzinfo=UTC)
AREAS = ["server", "api", "site", "scheduler", "launcher_mpi"]


def record(nodeid: str, outcome: str, markers: Sequence[str], reason: str | None = None) -> dict[str, Any]:
    failed = outcome in ("failed", "error")
    return {
        "nodeid": nodeid,
        "outcome": outcome,
        "duration": 0.5,
        "start": None,
        "stop": None,
        "markers": list(markers),
        "skip_reason": reason if outcome in ("skipped", "xfailed") else None,
        "longrepr": f"def test():\n>       assert x\nE       {reason}\n\nt.py:3: AssertionError"
        if failed
        else None,
        "worker": None,
        "phases": {"call": {"outcome": "failed" if failed else "passed", "duration": 0.5}},
        "evidence": None,
    }


def report(
    run_id: str,
    tests: Sequence[Mapping[str, Any]],
    *,
    start: datetime = T0,
    location: str = "ci-runner",
    exitstatus: int | None = None,
) -> dict[str, Any]:
    """A harness report.json (schema 1.1) of these test records."""
    counts = {k: 0 for k in ("passed", "failed", "error", "skipped", "xfailed", "xpassed")}
    for test in tests:
        counts[test["outcome"]] += 1
    failing = counts["failed"] + counts["error"]
    doc = {
        "schema_version": "1.1",
        "run_id": run_id,
        "start": start.isoformat(),
        "end": (start + timedelta(minutes=5)).isoformat(),
        "duration": 300.0,
        "exitstatus": (1 if failing else 0) if exitstatus is None else exitstatus,
        "areas": AREAS,
        "location": {
            "name": location,
            "reason": "named with --location",
            "description": "",
            "scheduler": "local",
            "mpi_launcher": "mpich",
            "node": {"cpus": 2, "gpus": 0},
            "declared_features": [],
            "features": ["mpi"],
            "probes": [{"feature": "mpi", "present": True, "detail": "mpiexec"}],
            "sources": [],
        },
        "required": {"features": [], "missing": []},
        "environment": {
            "hostname": "node1",
            "python": "3.11.2",
            "tolu": "0.1.0",
            "git_commit": "0123456789abcdef0123456789abcdef01234567",
            "mpi": None,
            "scheduler": "local",
            "databases": ["sqlite"],
            "args": ["-m", "server"],
            "load_average": [0.5, 0.4, 0.3],
        },
        "summary": {"total": len(tests), **counts},
        "flagged": False,
        "log_errors": {"unexpected": 0, "entries": []},
        "leftover_daemons": [],
        "artifacts": {"dir": f"/tmp/artifacts/{run_id}", "junit": None, "html": "report.html"},
        "tests": list(tests),
    }
    jsonschema.Draft202012Validator(report_schema()).validate(doc)
    return doc


def bench(
    medians: Mapping[str, Mapping[str, float]],
    *,
    created_at: datetime = T0,
    command: str = "throughput",
    parameters: Mapping[str, Any] | None = None,
    aims: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """A bench.json with one trial per scenario: scenario -> figure -> median (min 0.9x, max 1.1x).
    Figures with an aim in ``aims`` get a verdict on their median."""
    aims = dict(aims or {"ratio_run": ">= 0.8"})
    scenarios = []
    for name, figures in medians.items():
        info = {
            f: FigureInfo(
                unit="ratio" if f.startswith("ratio_") else "jobs/s",
                better="none" if f.startswith("baseline_") else "higher",
                description=f"the figure {f}",
                aim=aims.get(f),
            )
            for f in figures
        }
        verdicts = [
            Verdict(
                figure=f,
                aim=aim,
                median=figures[f],
                outcome="met" if figures[f] >= float(aim[3:]) else "missed",
            )
            for f, aim in aims.items()
            if f in figures
        ]
        scenarios.append(
            Scenario(
                name=name,
                description=f"200 `true` jobs, {name} mode, 2 slots",
                parameters=dict(parameters or {"mode": name, "jobs": 200, "workers": 2}),
                figure_info=info,
                trials=[Trial(index=0, started_at=created_at, seconds=10.0, figures=dict(figures))],
                summary={f: Stat(min=v * 0.9, median=v, max=v * 1.1, values=[v]) for f, v in figures.items()},
                verdicts=verdicts,
            )
        )
    every = [v for s in scenarios for v in s.verdicts]
    result = BenchResult(
        command=command,
        argv=["tolu", "bench", command, "--jobs", "200"],
        created_at=created_at,
        seconds=30.0,
        machine=Machine(
            hostname="node1",
            cpu_model="cpu",
            cores_logical=2,
            cores_physical=1,
            memory_bytes=1 << 30,
            memory_available_bytes=1 << 29,
            os="Debian",
            kernel="6.1",
            python="3.11.2",
            python_implementation="CPython",
            mpi=None,
            mpiexec=None,
            database="sqlite",
            tolu_version="0.1.0",
            git_commit="fedcba9876543210fedcba9876543210fedcba98",
            load_average=[0.2, 0.2, 0.2],
        ),
        parameters={"jobs": 200},
        scenarios=scenarios,
        check=Check(
            aims=len(every),
            met=sum(v.outcome == "met" for v in every),
            failed=[
                f"{s.name}: {v.figure} {v.median} ({v.aim})"
                for s in scenarios
                for v in s.verdicts
                if v.outcome != "met"
            ],
        ),
    )
    return json.loads(result.model_dump_json())


def pipeline(
    run_id: str, *, failed_step: int | None = None, findings: Sequence[tuple[str, str]] = ()
) -> dict[str, Any]:
    """An integration pipeline report: steps 1-11, one of them failed if asked, and findings."""
    steps = [
        {"number": n, "name": f"step number {n}", "ok": n != failed_step, "seconds": 1.0,
         "detail": f"step {n} broke\nsecond line" if n == failed_step else "done"}
        for n in range(1, 12)
    ]  # fmt: skip
    doc = {
        "schema": "tolu-integration-report",
        "version": 1,
        "run_id": run_id,
        "ok": failed_step is None and not findings,
        "start": T0.isoformat(),
        "duration": 120.0,
        "options": {"server": "process", "scheduler": "local", "faults": []},
        "server_url": "http://127.0.0.1:8000",
        "site_id": 1,
        "failed_step": f"step {failed_step}" if failed_step else "",
        "steps": steps,
        "findings": [{"kind": k, "message": m, "where": "job 3"} for k, m in findings],
        "planted_faults": {},
    }
    jsonschema.Draft202012Validator(json.loads(PIPELINE_SCHEMA.read_text())).validate(doc)
    return doc


def envelope(
    site_id: int,
    kind: str,
    document: Mapping[str, Any],
    *,
    run_id: str | None = None,
    location: str = "ci-runner",
    started_at: datetime = T0,
    commit: str | None = "0123456789abcdef0123456789abcdef01234567",
) -> dict[str, Any]:
    """The body of POST /runs."""
    return {
        "site_id": site_id,
        "kind": kind,
        "run_id": run_id or str(document.get("run_id")),
        "location": location,
        "machine": "node1",
        "commit": commit,
        "load": [0.5, 0.4, 0.3],
        "started_at": started_at.isoformat(),
        "document": dict(document),
    }
