"""``tolu bench api``: the server's hot paths over HTTP, without a launcher.

- bulk create: ``jobs`` jobs in requests of up to 10,000;
- acquire-and-complete: ``sessions`` launcher-like sessions at once, each acquiring
  ``batch`` jobs and reporting them through the launchers' endpoint as a launcher
  reports a task that ended in the batch it started in (``POST /sessions/{id}/reports``,
  one RUN_DONE per job carrying its start; the server records the RUNNING and carries the
  job on to JOB_FINISHED), until none is left; every acquisition is kept, so a job that two
  acquisitions got (``jobs_acquired_twice``) or that did not end JOB_FINISHED
  (``jobs_not_cycled``) is counted, not assumed away;
- page: a filtered 50-row page (tag and state filters, with the total count) out
  of a table filled to ``table_jobs`` jobs.

The server runs as ``server_workers`` processes (PostgreSQL for more than one); its CPU
and memory are those of every process under it, the supervisor and all its workers.

The sessions are threads of this process, each with its own client (connection pool):
a session spends ~0.02 ms of its own CPU per job (JSON in and out), so one Python
process drives some 50,000 jobs/s before its GIL would be the limit, and threads start
in no time. ``cycle_client_cpu_cores`` says how near that limit a run came.
"""

from __future__ import annotations

import statistics
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from harness.bench import stats
from harness.bench.figures import API
from harness.bench.processes import ProcessWatch
from harness.bench.schema import Phase, ProcessUsage, Scenario, Trial
from harness.bench.stack import Stack
from harness.bench.tasks import parse
from harness.bench.throughput import TrialOutput
from runner.launcher.journal import report
from runner.roles import Role
from runner.states import JobState

GROUPS = 100


def scenario_name(database: str, server_workers: int) -> str:
    """``api-postgresql``, ``api-postgresql-4-workers``: one-worker names are those of before."""
    base = f"api-{database}"
    return base if server_workers == 1 else f"{base}-{server_workers}-workers"


@dataclass
class SessionLog:
    """What one session of the cycle did (written by its thread only)."""

    session_id: int
    #: every job id each acquisition returned, in order (duplicates kept)
    acquired: list[int] = field(default_factory=list)
    #: jobs whose report was accepted (not moot)
    completed: int = 0
    acquire_ms: list[float] = field(default_factory=list)
    update_ms: list[float] = field(default_factory=list)
    #: the thread's own CPU time in the cycle
    cpu_s: float = 0.0
    error: str | None = None


@dataclass
class Cycle:
    """The acquire-and-complete phase of one trial."""

    logs: list[SessionLog]
    seconds: float
    #: epoch seconds, for the process watch
    started: float
    ended: float

    @property
    def completed(self) -> int:
        return sum(log.completed for log in self.logs)

    @property
    def acquired_twice(self) -> int:
        ids = [i for log in self.logs for i in log.acquired]
        return len(ids) - len(set(ids))


@dataclass
class ApiScenario:
    """One database and one server: bulk create, the acquire-and-complete cycle, pages."""

    stack: Stack
    jobs: int = 10_000
    batch: int = 1_000
    table_jobs: int = 100_000
    pages: int = 60
    #: launcher-like sessions cycling jobs at once
    sessions: int = 1
    #: the SQLite scenario of the same run, for the PostgreSQL/SQLite ratios.
    reference: ApiScenario | None = None
    #: the one-worker scenario on the same database in the same run, for ratio_cycle_vs_one_worker
    one_worker: ApiScenario | None = None
    last_figures: dict[str, float | None] = field(default_factory=dict)

    @property
    def server_workers(self) -> int:
        return self.stack.server.workers

    @property
    def name(self) -> str:
        return scenario_name(self.stack.database.kind, self.server_workers)

    def describe(self) -> Scenario:
        figures = {name: info.model_copy() for name, info in API.items()}
        if self.reference is None:
            figures.pop("ratio_create_vs_sqlite")
            figures.pop("ratio_cycle_vs_sqlite")
        if self.one_worker is None:
            figures.pop("ratio_cycle_vs_one_worker")
        if self.server_workers == 1:
            figures.pop("busiest_worker_cpu_share")
        if self.stack.database.kind != "postgresql":
            figures.pop("cycle_database_cpu_cores")
            figures.pop("cycle_database_cpu_ms_per_job")
        if self.server_workers > 1:
            # no one process handles every job, and N processes hold N copies of the server:
            # the per-process aims are the largest process's memory, not the sum
            figures["cycle_server_cpu_ms_per_job"].aim = None
            figures["server_peak_rss_mb"].aim = None
        else:
            figures["server_process_peak_rss_mb"].aim = None
        if self.stack.server.pid is None:
            # a server elsewhere: its memory and CPU cannot be seen from here
            for name in ("server_peak_rss_mb", "server_process_peak_rss_mb", "cycle_server_cpu_ms_per_job"):
                figures[name].aim = None
        workers = "1 worker" if self.server_workers == 1 else f"{self.server_workers} workers"
        return Scenario(
            name=self.name,
            description=(
                f"{self.jobs} jobs bulk created, then acquired and completed in batches of {self.batch} "
                f"by {self.sessions} session{'s' if self.sessions != 1 else ''} at once; "
                f"{self.pages} filtered 50-row pages out of {self.table_jobs} jobs; "
                f"{self.stack.database.kind} database, server of {workers}"
            ),
            parameters={
                "jobs": self.jobs,
                "batch": self.batch,
                "table_jobs": self.table_jobs,
                "pages": self.pages,
                "sessions": self.sessions,
                "server_workers": self.server_workers,
                "database": self.stack.database.kind,
                "database_version": self.stack.database.version,
                "server": self.stack.server.kind,
            },
            figure_info=figures,
        )

    def _specs(self, app_id: int, tag: str, count: int, start: int = 0) -> list[dict[str, Any]]:
        return [
            {"app_id": app_id, "tags": {"bench": tag, "group": str((start + i) % GROUPS)}}
            for i in range(count)
        ]

    def run(self, index: int) -> TrialOutput:
        client = self.stack.client
        app_id = self.stack.app_for(parse("true"), 1)
        tag = f"api-{index}-{int(time.time() * 1000)}"
        watch = ProcessWatch()
        watch.watch("server", self.stack.server.pid)
        watch.start()
        started_at = datetime.now(UTC)
        t0 = time.perf_counter()
        try:
            # -- bulk create
            specs = self._specs(app_id, tag, self.jobs)
            c0 = time.perf_counter()
            for start in range(0, self.jobs, 10_000):
                client.jobs.bulk_create(specs[start : start + 10_000])
            create_s = time.perf_counter() - c0

            # -- acquire, RUNNING, RUN_DONE in batches, by every session at once
            watch.sample()
            db_before = self.stack.database.backend_cpu()
            cycle = self._cycle(tag)
            db_after = self.stack.database.backend_cpu()
            watch.sample()
            finished = client.jobs.counts(tags={"bench": tag}).get(JobState.JOB_FINISHED, 0)

            # -- fill the table (not timed as a figure), then list filtered pages
            have = client.jobs.count(site_id=self.stack.site_id)
            fill = max(0, self.table_jobs - have)
            f0 = time.perf_counter()
            for start in range(0, fill, 10_000):
                client.jobs.bulk_create(self._specs(app_id, f"{tag}-fill", min(10_000, fill - start), start))
            fill_s = time.perf_counter() - f0
            table = client.jobs.count(site_id=self.stack.site_id)
            page_ms: list[float] = []
            for i in range(self.pages):
                state = "JOB_FINISHED" if i % 2 else "PREPROCESSED"
                p = time.perf_counter()
                client.jobs.page(
                    site_id=self.stack.site_id,
                    state=state,
                    tags={"group": str(i % GROUPS)},
                    limit=50,
                    offset=(i % 3) * 50,
                )
                page_ms.append((time.perf_counter() - p) * 1000)
        finally:
            watch.stop()
        total_s = time.perf_counter() - t0

        cycled = cycle.completed
        cycle_s = cycle.seconds
        acquire_ms = [ms for log in cycle.logs for ms in log.acquire_ms]
        update_ms = [ms for log in cycle.logs for ms in log.update_ms]
        server = watch.tree_usage("server", cycle.started, cycle.ended)
        server_s = server.cpu_s if server is not None else None
        database_s = _database_cpu_s(db_before, db_after)
        figures: dict[str, float | None] = {
            "create_jobs_per_s": stats.rate(self.jobs, create_s),
            "cycle_jobs_per_s": stats.rate(cycled, cycle_s),
            "acquire_ms_per_batch": statistics.median(acquire_ms) if acquire_ms else None,
            "update_ms_per_batch": statistics.median(update_ms) if update_ms else None,
            "page_p50_ms": stats.percentile(page_ms, 50),
            "page_p90_ms": stats.percentile(page_ms, 90),
            "page_max_ms": max(page_ms) if page_ms else None,
            "table_jobs": float(table),
            "server_peak_rss_mb": watch.peak_mb("server"),
            "server_process_peak_rss_mb": watch.largest_peak_mb("server"),
            "cycle_server_cpu_ms_per_job": _per(server_s, cycled, 1000),
            "cycle_server_cpu_cores": _per(server_s, cycle_s),
            "server_processes": float(server.processes) if server else None,
            "cycle_database_cpu_ms_per_job": _per(database_s, cycled, 1000),
            "cycle_database_cpu_cores": _per(database_s, cycle_s),
            "cycle_client_cpu_cores": _per(sum(log.cpu_s for log in cycle.logs), cycle_s),
            "jobs_acquired_twice": float(cycle.acquired_twice),
            "jobs_not_cycled": float(self.jobs - finished),
        }
        if self.reference is not None:
            ref = self.reference.last_figures
            figures["ratio_create_vs_sqlite"] = stats.ratio(
                figures["create_jobs_per_s"], ref.get("create_jobs_per_s")
            )
            figures["ratio_cycle_vs_sqlite"] = stats.ratio(
                figures["cycle_jobs_per_s"], ref.get("cycle_jobs_per_s")
            )
        if self.one_worker is not None:
            figures["ratio_cycle_vs_one_worker"] = stats.ratio(
                figures["cycle_jobs_per_s"], self.one_worker.last_figures.get("cycle_jobs_per_s")
            )
        processes = watch.rows(cycle.started, cycle.ended)
        if self.server_workers > 1:
            figures["busiest_worker_cpu_share"] = _busiest_share(processes)
        self.last_figures = figures
        phases = [
            Phase(
                name="create",
                start_s=0.0,
                end_s=create_s,
                jobs=self.jobs,
                seconds=create_s,
                jobs_per_s=stats.rate(self.jobs, create_s),
            ),
            Phase(
                name="acquire-and-complete",
                start_s=create_s,
                end_s=create_s + cycle_s,
                jobs=cycled,
                seconds=cycle_s,
                jobs_per_s=stats.rate(cycled, cycle_s),
            ),
            Phase(
                name="fill table",
                start_s=create_s + cycle_s,
                end_s=create_s + cycle_s + fill_s,
                jobs=fill,
                seconds=fill_s,
                jobs_per_s=stats.rate(fill, fill_s),
            ),
        ]
        notes = [
            f"{cycled} of {self.jobs} jobs went through acquire-and-complete "
            f"({self.sessions} session{'s' if self.sessions != 1 else ''}, server of {self.server_workers} "
            f"worker{'s' if self.server_workers != 1 else ''}); {cycle.acquired_twice} acquired twice, "
            f"{self.jobs - finished} not JOB_FINISHED after it",
            *(f"session {log.session_id} stopped: {log.error}" for log in cycle.logs if log.error),
        ]
        trial = Trial(
            index=index,
            started_at=started_at,
            seconds=total_s,
            phases=phases,
            figures=figures,
            raw={
                "page_ms": page_ms,
                "acquire_ms": acquire_ms,
                "update_ms": update_ms,
                "jobs_per_session": [log.completed for log in cycle.logs],
            },
            notes=notes,
        )
        trial.processes = processes
        return TrialOutput(trial, [])

    def _cycle(self, tag: str) -> Cycle:
        """Every session acquires and completes jobs of ``tag`` until none is left; timed from
        the moment all of them are ready (sessions opened) to the last one done."""
        client = self.stack.client
        clients = [client.clone() for _ in range(self.sessions)]
        logs = [SessionLog(int(c.sessions.create(self.stack.site_id, ttl_sec=600).id)) for c in clients]
        ready = threading.Barrier(self.sessions + 1)
        threads = [
            threading.Thread(
                target=self._session, args=(c, log, tag, ready), name=f"bench-session-{n}", daemon=True
            )
            for n, (c, log) in enumerate(zip(clients, logs, strict=True))
        ]
        for thread in threads:
            thread.start()
        ready.wait()
        started = time.time()
        k0 = time.perf_counter()
        for thread in threads:
            thread.join()
        seconds = time.perf_counter() - k0
        ended = time.time()
        for c, log in zip(clients, logs, strict=True):
            c.sessions.delete(log.session_id)
            c.close()
        return Cycle(logs, seconds, started, ended)

    def _session(self, client: Any, log: SessionLog, tag: str, ready: threading.Barrier) -> None:
        """One launcher-like session: acquire a batch as a serial-mode launcher asks (one
        node, one rank, the run's tag), then report it in one request as a launcher's
        reporter sends the outcomes of tasks that ended in the batch they started in (one
        RUN_DONE per job, carrying its start: runner/launcher/sink.py), until none is left.
        A task that runs longer than a spawner's batch costs its launcher one more report,
        its RUNNING; the cycle is the short task's.

        An error, or a report the server answers as moot, ends the session and is kept in
        ``log`` (the trial's notes say it); the jobs it held then show in ``jobs_not_cycled``.
        """
        ready.wait()
        cpu0 = time.thread_time()
        try:
            while True:
                a = time.perf_counter()
                held = client.sessions.acquire(
                    log.session_id, max_num_jobs=self.batch, filter_tags={"bench": tag},
                    max_nodes_per_job=1, serial_only=True,
                )
                log.acquire_ms.append((time.perf_counter() - a) * 1000)
                if not held:
                    break
                log.acquired.extend(int(j.id) for j in held)
                now = datetime.now(UTC)
                u = time.perf_counter()
                reports = [
                    report(j.id, j.attempt, JobState.RUN_DONE, now, return_code=0, run_started=now).json
                    for j in held
                ]
                result = client.sessions.report_json(log.session_id, reports)
                log.update_ms.append((time.perf_counter() - u) * 1000)
                log.completed += result.accepted
                if result.moot:
                    m = result.moot[0]
                    log.error = f"{len(result.moot)} reports answered as moot, e.g. job {m.id}: {m.reason}"
                    break
        except Exception as exc:  # kept and reported: the bookkeeping figures show what it cost
            log.error = f"{type(exc).__name__}: {exc}"
        finally:
            log.cpu_s = time.thread_time() - cpu0


def _busiest_share(processes: list[ProcessUsage]) -> float | None:
    """The busiest server worker's part of all the server workers' CPU (the supervisor left out)."""
    cpu = [p.cpu_s for p in processes if p.root == "server" and p.role == Role.SERVER.value]
    return max(cpu) / sum(cpu) if len(cpu) > 1 and sum(cpu) > 0 else None


def _database_cpu_s(before: dict[int, float] | None, after: dict[int, float] | None) -> float | None:
    """The database backends' CPU seconds between two readings (a backend new since
    ``before`` counts from 0)."""
    if before is None or after is None:
        return None
    return sum(cpu - before.get(pid, 0.0) for pid, cpu in after.items())


def _per(value: float | None, count: float, scale: float = 1.0) -> float | None:
    """``value`` per ``count`` (times ``scale``); None when either is missing."""
    return value / count * scale if value is not None and count > 0 else None
