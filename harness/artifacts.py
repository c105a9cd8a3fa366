"""The artifact folder of one run, and the per-test records that go into its report.

Layout of ``artifacts/<run-id>/``::

    junit.xml      report.json      report.html
    tests/<slug>/  evidence of one test that used a server: evidence.json, server.log
                   (its slice), site logs, jobs.json (state histories), batch_jobs.json

Every process writes the evidence of the tests it ran into ``tests/``; under
pytest-xdist the workers do that and the controller, which sees every test report,
merges the evidence when it writes the report.
"""

from __future__ import annotations

import json
import re
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

EVIDENCE_FILE = "evidence.json"
TESTS_DIR = "tests"

#: a log line that reports an error: the level word as logging and uvicorn print it.
ERROR_LINE = re.compile(r"(?:^|[\s\[|:=])(?:ERROR|CRITICAL)(?:[\s\]|:,]|$)")


def new_run_id(now: datetime | None = None) -> str:
    now = now or datetime.now(UTC)
    return f"{now:%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"


def slug(nodeid: str, limit: int = 120) -> str:
    """A file-system-safe folder name for a test id, unique enough and readable."""
    text = re.sub(r"[^A-Za-z0-9_.-]+", "_", nodeid.replace("::", "__")).strip("_.")
    if len(text) > limit:
        text = f"{text[: limit - 9]}-{secrets.token_hex(4)}"
    return text or "test"


@dataclass(frozen=True)
class ErrorLine:
    file: str
    line: int
    text: str
    expected: bool
    #: the exception the traceback printed under the line ends with, if one follows it
    #: ("Exception in ASGI application" says nothing of what went wrong)
    cause: str | None = None


#: a line that begins a log record (so no traceback line): a date, or a level word.
RECORD_START = re.compile(r"^(?:\d{4}-\d\d-\d\d|\[?(?:DEBUG|INFO|WARNING|ERROR|CRITICAL)\b)")


def scan_errors(text: str, file: str, expected: list[re.Pattern[str]]) -> list[ErrorLine]:
    """The ERROR/CRITICAL lines of a log, each marked expected when a pattern matches it,
    with the exception of the traceback that follows it, if any."""
    found: list[ErrorLine] = []
    lines = text.splitlines()
    for index, line in enumerate(lines):
        if ERROR_LINE.search(line):
            hit = any(p.search(line) for p in expected)
            found.append(ErrorLine(file, index + 1, line.rstrip()[:2000], hit, _cause(lines, index + 1)))
    return found


_NOT_A_CAUSE = ("Traceback", "During handling", "The above", "+")


def _cause(lines: list[str], start: int) -> str | None:
    """The last exception line of the traceback that begins at ``lines[start]``, if one does."""
    if start >= len(lines) or not lines[start].lstrip(" +|").startswith("Traceback"):
        return None
    cause = None
    for line in lines[start:]:
        if RECORD_START.match(line):
            break
        # the exception lines are the traceback's unindented ones; the last is the cause
        if line.strip() and not line[:1].isspace() and not line.startswith(_NOT_A_CAUSE):
            cause = line.rstrip()
    return cause[:500] if cause else None


@dataclass
class TestRecord:
    """What the report says about one test, built from its setup/call/teardown reports."""

    nodeid: str
    outcome: str = "passed"
    duration: float = 0.0
    start: float | None = None
    stop: float | None = None
    markers: list[str] = field(default_factory=list)
    location: str = ""
    skip_reason: str | None = None
    longrepr: str | None = None
    worker: str | None = None
    phases: dict[str, dict[str, Any]] = field(default_factory=dict)

    def add(self, report: pytest.TestReport) -> None:
        self.phases[report.when] = {"outcome": report.outcome, "duration": round(report.duration, 6)}
        self.duration += report.duration
        self.start = report.start if self.start is None else min(self.start, report.start)
        self.stop = report.stop if self.stop is None else max(self.stop, report.stop)
        info: dict[str, Any] = getattr(report, "tolu", None) or {}
        self.markers = info.get("markers", self.markers)
        self.worker = getattr(report, "worker_id", None) or self.worker
        if hasattr(report, "wasxfail"):
            if report.skipped:
                self._set("xfailed", reason=str(report.wasxfail) or None)
            elif report.passed and report.when == "call":
                self._set("xpassed")
            elif report.failed:
                self._set("failed", repr_=report.longreprtext)
            return
        if report.skipped:
            self._set("skipped", reason=_skip_reason(report))
        elif report.failed:
            if report.when == "call":
                self._set("failed", repr_=report.longreprtext)
            else:
                self._set("error", repr_=f"error in {report.when}:\n{report.longreprtext}")

    _RANK = {"passed": 0, "skipped": 1, "xfailed": 1, "xpassed": 1, "failed": 2, "error": 3}

    def _set(self, outcome: str, *, reason: str | None = None, repr_: str | None = None) -> None:
        if self._RANK[outcome] < self._RANK[self.outcome]:
            return
        self.outcome = outcome
        if reason is not None:
            self.skip_reason = reason
        if repr_ is not None:
            self.longrepr = repr_ if self.longrepr is None else f"{self.longrepr}\n\n{repr_}"

    def to_json(self, evidence: dict[str, Any] | None) -> dict[str, Any]:
        return {
            "nodeid": self.nodeid,
            "outcome": self.outcome,
            "duration": round(self.duration, 6),
            "start": _iso(self.start),
            "stop": _iso(self.stop),
            "markers": self.markers,
            "skip_reason": self.skip_reason,
            "longrepr": _tail(self.longrepr, 8000),
            "worker": self.worker,
            "phases": self.phases,
            "evidence": evidence,
        }


def _skip_reason(report: pytest.TestReport) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2]).removeprefix("Skipped: ")
    return str(longrepr)


def _iso(stamp: float | None) -> str | None:
    return None if stamp is None else datetime.fromtimestamp(stamp, UTC).isoformat()


def _tail(text: str | None, limit: int) -> str | None:
    if text is None or len(text) <= limit:
        return text
    return "...\n" + text[-limit:]


class Recorder:
    """Collects every test report (in the controller under xdist) into TestRecords."""

    def __init__(self) -> None:
        self.records: dict[str, TestRecord] = {}

    def add(self, report: pytest.TestReport) -> None:
        record = self.records.get(report.nodeid)
        if record is None:
            record = self.records[report.nodeid] = TestRecord(report.nodeid)
        record.add(report)

    def counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for record in self.records.values():
            counts[record.outcome] = counts.get(record.outcome, 0) + 1
        return counts


def read_evidence(run_dir: Path) -> dict[str, dict[str, Any]]:
    """nodeid -> evidence, from every ``tests/*/evidence.json`` any process wrote."""
    out: dict[str, dict[str, Any]] = {}
    for path in sorted((run_dir / TESTS_DIR).glob(f"*/{EVIDENCE_FILE}")):
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        data["dir"] = str(path.parent.relative_to(run_dir))
        out[data.get("nodeid", path.parent.name)] = data
    return out
