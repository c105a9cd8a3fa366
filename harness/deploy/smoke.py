"""API smoke tests as data: the stepci workflows of ``ci/smoke/`` against a live server.

The workflows (``ci/smoke/*.yml``) are what a deployment check does: register and log in,
sites, apps, jobs (create, bulk, DAG, idempotent resend, filter, page, patch, a forbidden
transition), events, batch jobs, transfers, tokens (refresh, revoke, read-only tokens, a
device-code login), health and schema revision. They run through
stepci's engine (the npm package ``stepci``, pinned in ``ci/smoke/package.json``;
``ci/smoke/run.js`` asks it for structured results), against any URL: the suites' server
container, a facility's own deployment (``tolu ci smoke URL``).

Counts: *requests* are the HTTP requests sent (one per step that ran), *failures* the steps
whose checks failed (a step skipped after a failure is counted apart), *operations* the
distinct operations of the server's ``/openapi.json`` that the requests reached.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests

from harness.checkout import REPO_ROOT

SMOKE_DIR = REPO_ROOT / "ci" / "smoke"
RUNNER = SMOKE_DIR / "run.js"
STEPCI = SMOKE_DIR / "node_modules" / "@stepci" / "runner"
#: a whole run against a server on the same machine takes a few seconds; this bounds a hung one.
RUN_TIMEOUT_SEC = 600


class SmokeError(RuntimeError):
    """The smoke tests could not run at all (no node, stepci not installed, bad output)."""


def workflows() -> list[Path]:
    """Every workflow of ``ci/smoke/``, by name."""
    return sorted(SMOKE_DIR.glob("*.yml"))


def workflow(name: str) -> Path:
    """The workflow ``ci/smoke/<name>.yml``; an unknown name lists the known ones."""
    path = SMOKE_DIR / f"{name}.yml"
    if not path.is_file():
        known = ", ".join(p.stem for p in workflows())
        raise SmokeError(f"no smoke workflow {name!r}; known: {known}")
    return path


def install_stepci() -> None:
    """``npm ci`` in ci/smoke (the versions of its package-lock.json) when stepci is missing."""
    if STEPCI.is_dir():
        return
    npm = shutil.which("npm")
    if npm is None:
        raise SmokeError("the smoke tests need Node.js and npm (Debian: apt install nodejs npm)")
    proc = subprocess.run(
        [npm, "ci", "--no-audit", "--no-fund", "--prefix", str(SMOKE_DIR)],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-10:])
        raise SmokeError(f"npm ci in {SMOKE_DIR} failed (exit {proc.returncode}):\n{tail}")


@dataclass(frozen=True)
class Step:
    workflow: str
    test: str
    name: str
    passed: bool
    skipped: bool
    method: str | None
    url: str | None
    status: int | None
    error: str | None
    failed_checks: dict[str, Any]
    body: str | None

    def why(self) -> str:
        """One paragraph a person reads to see what went wrong."""
        parts = [f"{self.method} {self.url} -> {self.status}" if self.method else (self.error or "")]
        for check, value in self.failed_checks.items():
            parts.append(f"  check {check}: expected {value.get('expected')!r}, got {value.get('given')!r}")
        if self.error and self.method:
            parts.append(f"  {self.error}")
        if self.body:
            parts.append(f"  body: {self.body}")
        return "\n".join(parts)


@dataclass
class SmokeResult:
    """What one run of the workflows did, step by step."""

    url: str
    steps: list[Step]
    #: (METHOD, /path/{template}) of every operation the server publishes
    published: set[tuple[str, str]] = field(default_factory=set)
    #: those that a request reached
    reached: set[tuple[str, str]] = field(default_factory=set)

    @property
    def requests(self) -> int:
        return sum(1 for s in self.steps if s.method)

    @property
    def failures(self) -> list[Step]:
        return [s for s in self.steps if not s.passed and not s.skipped]

    @property
    def skipped(self) -> list[Step]:
        return [s for s in self.steps if s.skipped]

    @property
    def ok(self) -> bool:
        return bool(self.steps) and not self.failures and not self.skipped

    def by_workflow(self) -> dict[str, list[Step]]:
        out: dict[str, list[Step]] = {}
        for s in self.steps:
            out.setdefault(s.workflow, []).append(s)
        return out

    def summary(self) -> str:
        """``operations 31 of 40, requests 87, failures 0 (skipped 0)``"""
        return (
            f"operations {len(self.reached)} of {len(self.published)}, requests {self.requests}, "
            f"failures {len(self.failures)} (skipped {len(self.skipped)})"
        )

    def as_json(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "operations": {"reached": len(self.reached), "published": len(self.published)},
            "requests": self.requests,
            "failures": len(self.failures),
            "skipped": len(self.skipped),
            "unreached": sorted(" ".join(op) for op in self.published - self.reached),
            "steps": [s.__dict__ for s in self.steps],
        }


def run_smoke(url: str, paths: list[Path] | None = None) -> SmokeResult:
    """Run the workflows (default: all of ci/smoke) against the server at ``url``."""
    install_stepci()
    node = shutil.which("node")
    if node is None:
        raise SmokeError("the smoke tests need Node.js (Debian: apt install nodejs)")
    chosen = paths or workflows()
    env = {**os.environ, "STEPCI_DISABLE_ANALYTICS": "1", "NO_COLOR": "1"}
    proc = subprocess.run(
        [node, str(RUNNER), url, *map(str, chosen)],
        capture_output=True,
        text=True,
        env=env,
        timeout=RUN_TIMEOUT_SEC,
        check=False,
    )
    if proc.returncode != 0:
        raise SmokeError(f"stepci did not run (exit {proc.returncode}): {proc.stderr.strip()[-2000:]}")
    try:
        doc = json.loads(proc.stdout)
    except ValueError as exc:
        raise SmokeError(f"stepci's results are not JSON: {proc.stdout[:300]!r}") from exc
    steps = [
        Step(
            workflow=w["name"],
            test=t["name"],
            name=s["name"],
            passed=bool(s["passed"]),
            skipped=bool(s["skipped"]),
            method=s["method"],
            url=s["url"],
            status=s["status"],
            error=s["error"],
            failed_checks=s["failed_checks"] or {},
            body=s["body"],
        )
        for w in doc["workflows"]
        for t in w["tests"]
        for s in t["steps"]
    ]
    result = SmokeResult(url=url, steps=steps)
    result.published = _published_operations(url)
    result.reached = _reached(result.published, steps)
    return result


def _published_operations(url: str) -> set[tuple[str, str]]:
    doc = requests.get(url.rstrip("/") + "/openapi.json", timeout=30).json()
    methods = {"get", "post", "put", "patch", "delete"}
    return {(m.upper(), path) for path, ops in doc.get("paths", {}).items() for m in ops if m in methods}


def _reached(published: set[tuple[str, str]], steps: list[Step]) -> set[tuple[str, str]]:
    patterns = [
        (method, path, re.compile("^" + re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(path)) + "$"))
        for method, path in published
    ]
    reached = set()
    for s in steps:
        if not (s.method and s.url):
            continue
        path = urlsplit(s.url).path
        # /jobs/counts matches /jobs/{job_id} too: the template with fewest parameters wins
        matches = [(t.count("{"), t) for m, t, rx in patterns if m == s.method and rx.match(path)]
        if matches:
            reached.add((s.method, min(matches)[1]))
    return reached


def write_log(result: SmokeResult, path: Path) -> Path:
    """One line per step (ok / FAIL / skip, request, status), the reasons, and the counts."""
    lines = []
    for s in result.steps:
        mark = "skip" if s.skipped else "ok  " if s.passed else "FAIL"
        lines.append(
            f"{mark} {s.workflow} / {s.test} / {s.name}: {s.method or '-'} {s.url or ''} -> {s.status}"
        )
        if not s.passed and not s.skipped:
            lines += ["       " + x for x in s.why().splitlines()]
    lines.append(result.summary())
    path.write_text("\n".join(lines) + "\n")
    return path
