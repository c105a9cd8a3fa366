"""Evidence of one test that used a server: logs, job state histories, failed jobs' output.

Fixtures tell the test's :class:`Evidence` what they made (the server and where its
log stood when the test began, the client of the test's fresh user, site
directories, extra logs). At the end of the test, after its launchers and agents
stopped and while the server still runs, :meth:`Evidence.collect` writes
``tests/<slug>/`` and its ``evidence.json``. Collecting never fails a test: what
could not be collected is written down as such.
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from harness.artifacts import EVIDENCE_FILE, TESTS_DIR, ErrorLine, scan_errors, slug

#: at most this many jobs (and their events) are exported per test.
MAX_JOBS = 2000
MAX_EVENTS = 50_000
TAIL_LINES = 60


class ServerLike(Protocol):
    @property
    def url(self) -> str: ...


@dataclass
class _ServerSource:
    url: str
    database: str
    mode: str
    log_path: Path | None
    offset: int
    refresh: Callable[[], None] | None = None


@dataclass
class Evidence:
    nodeid: str
    run_dir: Path
    expected: list[re.Pattern[str]] = field(default_factory=list)
    servers: list[_ServerSource] = field(default_factory=list)
    clients: list[Any] = field(default_factory=list)
    sites: list[Path] = field(default_factory=list)
    logs: list[tuple[str, Path]] = field(default_factory=list)

    @property
    def dir(self) -> Path:
        return self.run_dir / TESTS_DIR / slug(self.nodeid)

    # ---- what fixtures tell us

    def add_server(
        self,
        *,
        url: str,
        database: str,
        mode: str,
        log_path: Path | None,
        refresh: Callable[[], None] | None = None,
    ) -> None:
        if refresh is not None:
            _quietly(refresh)
        log_path = Path(log_path) if log_path is not None else None
        offset = log_path.stat().st_size if log_path is not None and log_path.exists() else 0
        self.servers.append(_ServerSource(url, database, mode, log_path, offset, refresh))

    def add_client(self, client: Any) -> None:
        self.clients.append(client)

    def add_site(self, site_dir: Path) -> None:
        self.sites.append(Path(site_dir))

    def add_log(self, label: str, path: Path) -> None:
        self.logs.append((label, Path(path)))

    def expect_errors(self, *patterns: str) -> None:
        self.expected.extend(re.compile(p) for p in patterns)

    @property
    def used(self) -> bool:
        return bool(self.servers or self.clients or self.sites or self.logs)

    # ---- collection

    def collect(self, outcome: str) -> dict[str, Any]:
        out = self.dir
        out.mkdir(parents=True, exist_ok=True)
        data: dict[str, Any] = {
            "nodeid": self.nodeid,
            "outcome": outcome,
            "servers": [],
            "logs": [],
            "jobs": {"count": 0, "states": {}, "file": None, "failed": []},
            "batch_jobs": [],
            "error_lines": [],
            "problems": [],
        }
        errors: list[ErrorLine] = []
        for index, server in enumerate(self.servers):
            name = "server.log" if index == 0 else f"server-{index}.log"
            entry: dict[str, Any] = {"url": server.url, "database": server.database, "mode": server.mode}
            if server.log_path is not None:
                if server.refresh is not None:
                    _quietly(server.refresh)
                text = _read_from(server.log_path, server.offset)
                (out / name).write_text(text)
                entry["log"] = name
                data["logs"].append(
                    {"label": f"server ({server.mode}, {server.database})", "file": name, "tail": _tail(text)}
                )
                errors += scan_errors(text, name, self.expected)
            data["servers"].append(entry)
        for site in self.sites:
            for log in sorted((site / "log").glob("*")) if (site / "log").is_dir() else []:
                if log.is_file():
                    rel = Path(f"site-{site.name}") / "log" / log.name
                    (out / rel).parent.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(log, out / rel)
                    text = (out / rel).read_text(errors="replace")
                    data["logs"].append(
                        {"label": f"site {site.name}: {log.name}", "file": str(rel), "tail": _tail(text)}
                    )
                    errors += scan_errors(text, str(rel), self.expected)
        for label, path in self.logs:
            if path.is_file():
                rel = Path("logs") / f"{slug(label)}{path.suffix or '.log'}"
                (out / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(path, out / rel)
                text = (out / rel).read_text(errors="replace")
                data["logs"].append({"label": label, "file": str(rel), "tail": _tail(text)})
                errors += scan_errors(text, str(rel), self.expected)
        for index, client in enumerate(self.clients):
            # one try per request: a server the test stopped (or that broke) is not waited
            # for through the client's backoff, seconds at every teardown
            once = client.clone(retries=0) if hasattr(client, "clone") else client
            try:
                self._collect_jobs(once, out, data, "jobs.json" if index == 0 else f"jobs-{index}.json")
            except Exception as exc:  # the server may be the thing that broke
                data["problems"].append(
                    f"jobs of {getattr(client, 'username', '?')}: {type(exc).__name__}: {exc}"
                )
            finally:
                if once is not client:
                    once.close()
        data["error_lines"] = [e.__dict__ for e in errors]
        (out / EVIDENCE_FILE).write_text(json.dumps(data, indent=1, default=str))
        return data

    def _collect_jobs(self, client: Any, out: Path, data: dict[str, Any], jobs_file: str) -> None:
        jobs = client.jobs.filter(limit=MAX_JOBS)
        if not jobs and not client.batch_jobs.filter(limit=1):
            return
        events = (
            sorted(client.events.filter(limit=MAX_EVENTS), key=lambda e: (e.timestamp, e.id)) if jobs else []
        )
        history: dict[int, list[dict[str, Any]]] = {}
        for event in events:
            history.setdefault(event.job_id, []).append(
                {
                    "from": _s(event.from_state),
                    "to": _s(event.to_state),
                    "timestamp": event.timestamp.isoformat(),
                    "data": event.data,
                }
            )
        states: dict[str, int] = {}
        rows: list[dict[str, Any]] = []
        site_dirs = {s.resolve() for s in self.sites}
        failed: list[dict[str, Any]] = []
        for job in jobs:
            state = _s(job.state)
            states[state] = states.get(state, 0) + 1
            rows.append(
                {
                    "id": job.id,
                    "app_id": job.app_id,
                    "site_id": job.site_id,
                    "state": state,
                    "tags": job.tags,
                    "workdir": job.workdir,
                    "return_code": job.return_code,
                    "retry_count": job.retry_count,
                    "batch_job_id": job.batch_job_id,
                    "events": history.get(job.id, []),
                }
            )
            if state in ("FAILED", "RUN_ERROR", "RUN_TIMEOUT", "KILLED") or (job.return_code or 0) != 0:
                failed.append(_job_output(job, site_dirs, out))
        (out / jobs_file).write_text(json.dumps(rows, indent=1, default=str))
        if data["jobs"]["file"] is None:  # the first client (a test's own user) is the one reported
            data["jobs"] = {
                "count": len(jobs),
                "states": states,
                "file": jobs_file,
                "failed": failed[:50],
                "truncated": len(jobs) >= MAX_JOBS,
            }
        batch_jobs = client.batch_jobs.filter(limit=MAX_JOBS)
        data["batch_jobs"] += [
            {
                "id": b.id,
                "scheduler_id": b.scheduler_id,
                "state": _s(b.state),
                "num_nodes": b.num_nodes,
                "wall_time_min": b.wall_time_min,
                "job_mode": _s(b.job_mode),
                "status_info": b.status_info,
                "created_at": _iso(b.created_at),
                "start_time": _iso(b.start_time),
                "end_time": _iso(b.end_time),
                "updated_at": _iso(b.updated_at),
                "script_output": _batch_output(b, site_dirs, out),
            }
            for b in batch_jobs
        ]


def _job_output(job: Any, site_dirs: set[Path], out: Path) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "id": job.id,
        "state": _s(job.state),
        "return_code": job.return_code,
        "workdir": job.workdir,
        "output": None,
        "tail": None,
    }
    for site in site_dirs:
        path = site / "data" / job.workdir / "job.out"
        if path.is_file():
            rel = Path("jobs") / f"{job.id}.out"
            (out / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, out / rel)
            entry.update(output=str(rel), path=str(path), tail=_tail(path.read_text(errors="replace")))
            break
    return entry


def _batch_output(batch: Any, site_dirs: set[Path], out: Path) -> list[str]:
    copied: list[str] = []
    for site in site_dirs:
        folder = site / "batch"
        if not folder.is_dir():
            continue
        for path in sorted(folder.iterdir()):
            if path.is_file() and (
                str(batch.id) in path.stem.split("-")
                or path.stem == str(batch.id)
                or (batch.scheduler_id and str(batch.scheduler_id) in path.name)
            ):
                rel = Path("batch") / path.name
                (out / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(path, out / rel)
                copied.append(str(rel))
    return copied


def _read_from(path: Path, offset: int) -> str:
    try:
        with path.open("rb") as fh:
            fh.seek(offset)
            return fh.read().decode(errors="replace")
    except OSError:
        return ""


def _tail(text: str, lines: int = TAIL_LINES) -> str:
    return "\n".join(text.splitlines()[-lines:])


def _s(value: Any) -> str:
    return str(getattr(value, "value", value)) if value is not None else ""


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def _quietly(func: Callable[[], None]) -> None:
    with contextlib.suppress(Exception):
        func()
