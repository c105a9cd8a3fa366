"""One throughput trial: N jobs through a real server and a real launcher.

The clock starts at the first submission and stops at the last job's final Event.
Per-job times come from the server's Events (the launcher reports when things
really happened), so the harness's own polling does not blur them.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from harness.bench import baselines, stats
from harness.bench.figures import THROUGHPUT
from harness.bench.machine import mpiexec_path
from harness.bench.memory import PeakRSS
from harness.bench.schema import Baseline, Phase, Scenario, Trial
from harness.bench.stack import RequestCounter, Stack, start_launcher
from harness.bench.tasks import Task
from harness.waiting import WaitTimeout, wait_until

FINAL = ("JOB_FINISHED", "FAILED", "KILLED")


class BenchError(RuntimeError):
    """A trial that could not finish (stuck jobs, dead launcher); says what and where."""


def _final(counts: Mapping[Any, int]) -> int:
    """How many of the jobs counted per state are in a final state."""
    return sum(int(n) for state, n in counts.items() if str(state) in FINAL)


class Progress(Protocol):
    def begin(self, description: str, total: int) -> None: ...
    def update(self, done: int) -> None: ...
    def end(self) -> None: ...


class NoProgress:
    def begin(self, description: str, total: int) -> None:
        pass

    def update(self, done: int) -> None:
        pass

    def end(self) -> None:
        pass


@dataclass
class JobRow:
    scenario: str
    trial: int
    job_id: int
    created_s: float
    running_s: float | None
    done_s: float | None
    final_s: float | None
    final_state: str


CSV_FIELDS = ("scenario", "trial", "job_id", "created_s", "running_s", "done_s", "final_s", "final_state")


@dataclass
class TrialOutput:
    trial: Trial
    rows: list[JobRow]


def epoch(value: datetime) -> float:
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.timestamp()


@dataclass
class ThroughputScenario:
    """``mode`` serial|mpi, ``jobs`` jobs of ``task`` on ``workers`` slots."""

    stack: Stack
    mode: str
    jobs: int
    workers: int
    task: Task
    baseline_jobs: int
    timeout_s: float
    progress: Progress
    #: seconds between progress polls (GET /jobs/counts); None: 0.5 s, 2 s above 10,000 jobs,
    #: so the benchmark's own requests stay a small load on the server it measures.
    poll_s: float | None = None
    #: RUN_ERROR/RUN_TIMEOUT events of the last trial, with their data (return code, output tail).
    errors: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.mode

    def describe(self) -> Scenario:
        return Scenario(
            name=self.mode,
            description=f"{self.jobs} `{self.task.spec}` jobs, {self.mode} mode, {self.workers} slots",
            parameters={
                "mode": self.mode,
                "jobs": self.jobs,
                "workers": self.workers,
                "task": self.task.spec,
                "task_argv": list(self.task.argv),
                "baseline_jobs": self.baseline_jobs,
                "server": self.stack.server.kind,
                "database": self.stack.database.kind,
            },
            figure_info=dict(THROUGHPUT),
        )

    # ------------------------------------------------------------ baselines

    def measure_baselines(self, jobs: int) -> list[Baseline]:
        out = [baselines.process_pool(self.task.argv, workers=self.workers, jobs=jobs)]
        if self.mode == "mpi":
            mpiexec = mpiexec_path()
            if mpiexec is None:
                raise BenchError(
                    "MPI mode needs an mpiexec: the facility's on PATH, or the mpich wheel's "
                    "beside this Python (pip install 'tolu[mpich]')"
                )
            out.append(baselines.mpiexec_loop(mpiexec, self.task.argv, workers=self.workers, jobs=jobs))
        return out

    # ------------------------------------------------------------ the trial

    def run(self, index: int) -> TrialOutput:
        # Half of the baseline runs before tolu's run and half after, so a machine whose
        # load changes during the trial weighs on both sides of the ratio alike.
        before = self.measure_baselines(max(1, self.baseline_jobs // 2))
        stack = self.stack
        client = stack.client
        app_id = stack.app_for(self.task, self.workers)
        tag = f"{self.mode}-{index}-{int(time.time() * 1000)}"
        tags = {"bench": tag}
        specs: list[dict[str, Any]] = [
            {
                "app_id": app_id,
                "tags": tags,
                "resources": {"node_packing_count": self.workers},
            }
            for _ in range(self.jobs)
        ]
        counter = RequestCounter(stack.server)
        requests_before = counter.count()
        routes_before = dict(counter.by_route)
        rss = PeakRSS(skip_exe=self.task.argv[0])
        rss.watch("server", stack.server.pid)
        rss.start()
        harness_requests = 0

        started_at = datetime.now(UTC)
        t0 = time.time()
        created: list[Any] = []
        for start in range(0, self.jobs, 10_000):
            created.extend(client.jobs.bulk_create(specs[start : start + 10_000]))
            harness_requests += 1
        t_created = time.time()
        ids = {int(j.id) for j in created}

        launcher = start_launcher(stack, self.mode)
        t_launch = time.time()
        rss.watch("launcher", launcher.pid)
        self.progress.begin(f"{self.mode}: {self.jobs} x {self.task.spec}", self.jobs)

        def final_counts() -> dict[str, int]:
            """Jobs per state; raises when the launcher ended before every job did."""
            nonlocal harness_requests
            counts = client.jobs.counts(site_id=stack.site_id, tags=tags)
            harness_requests += 1
            done = _final(counts)
            self.progress.update(done)
            if done < self.jobs and not launcher.alive():
                raise BenchError(
                    f"the {self.mode} launcher (pid {launcher.pid}) exited with {self.jobs - done} jobs "
                    f"not final; states {dict(counts)}; logs in {launcher.log_dir}; "
                    f"its output ends: {launcher.tail()[-800:]}"
                )
            return counts

        try:
            wait_until(
                final_counts,
                check=lambda counts: _final(counts) >= self.jobs,
                timeout=self.timeout_s,
                interval=self.poll_s or (0.5 if self.jobs <= 10_000 else 2.0),
                what=f"{self.jobs} jobs in a final state",
            )
        except WaitTimeout as exc:
            raise BenchError(
                f"{self.jobs - _final(exc.last)} of {self.jobs} jobs not final after {self.timeout_s:.0f}s; "
                f"states {dict(exc.last)}; launcher logs in {launcher.log_dir}"
            ) from None
        finally:
            self.progress.end()
            t_stop = time.time()
            launcher.stop()
            stop_s = time.time() - t_stop
            rss.stop()
        t_seen = time.time()
        requests_after = counter.count()
        routes = {
            route: n - routes_before.get(route, 0)
            for route, n in counter.by_route.items()
            if n - routes_before.get(route, 0) > 0
        }

        after = self.measure_baselines(max(1, self.baseline_jobs - self.baseline_jobs // 2))
        measured = baselines.combine(before, after)
        rows, final_states = self._collect(index, ids, t0, tags)
        trial = self._derive(
            index,
            started_at,
            rows,
            final_states,
            measured,
            t0=t0,
            t_created=t_created,
            t_launch=t_launch,
            t_seen=t_seen,
            rss=rss,
            requests=None
            if requests_before is None or requests_after is None
            else requests_after - requests_before,
            request_source=counter.source,
            harness_requests=harness_requests,
        )
        trial.requests_by_route = dict(sorted(routes.items(), key=lambda kv: -kv[1]))
        trial.raw["launcher_stop_s"] = [stop_s]
        if self.errors:
            trial.notes.append(
                f"{len(self.errors)} RUN_ERROR/RUN_TIMEOUT events (jobs retried up to their limit)"
            )
            trial.notes.extend(self.errors[:5])
        return TrialOutput(trial, rows)

    def _collect(
        self, index: int, ids: set[int], t0: float, tags: dict[str, str]
    ) -> tuple[list[JobRow], dict[str, int]]:
        client = self.stack.client
        jobs = client.jobs.filter(site_id=self.stack.site_id, tags=tags)
        after = datetime.fromtimestamp(t0 - 1, UTC)
        firsts: dict[str, dict[int, float]] = {}
        self.errors = []
        for state in ("RUNNING", "RUN_DONE", "RUN_ERROR", "RUN_TIMEOUT", *FINAL):
            seen: dict[int, float] = {}
            for ev in client.events.filter(site_id=self.stack.site_id, to_state=state, after=after):
                jid = int(ev.job_id)
                if jid in ids and state in ("RUN_ERROR", "RUN_TIMEOUT"):
                    self.errors.append(f"job {jid} {state}: {json.dumps(ev.data)[:300]}")
                if jid in ids:
                    ts = epoch(ev.timestamp) - t0
                    # the last RUNNING (a retried job ran more than once), the first final
                    if state == "RUNNING" or jid not in seen:
                        seen[jid] = ts
            firsts[state] = seen
        rows: list[JobRow] = []
        final_states: dict[str, int] = {}
        for job in jobs:
            jid = int(job.id)
            done = (
                firsts["RUN_DONE"].get(jid) or firsts["RUN_ERROR"].get(jid) or firsts["RUN_TIMEOUT"].get(jid)
            )
            final = next((firsts[s][jid] for s in FINAL if jid in firsts[s]), None)
            state = str(job.state)
            final_states[state] = final_states.get(state, 0) + 1
            rows.append(
                JobRow(
                    self.mode,
                    index,
                    jid,
                    epoch(job.created_at) - t0,
                    firsts["RUNNING"].get(jid),
                    done,
                    final,
                    state,
                )
            )
        rows.sort(key=lambda r: r.job_id)
        return rows, final_states

    def _derive(
        self,
        index: int,
        started_at: datetime,
        rows: list[JobRow],
        final_states: dict[str, int],
        measured: list[Baseline],
        *,
        t0: float,
        t_created: float,
        t_launch: float,
        t_seen: float,
        rss: PeakRSS,
        requests: int | None,
        request_source: str | None,
        harness_requests: int,
    ) -> Trial:
        n = self.jobs
        w = self.workers
        running = [r.running_s for r in rows if r.running_s is not None]
        finals = [r.final_s for r in rows if r.final_s is not None]
        first_running = min(running) if running else None
        last_final = max(finals) if finals else t_seen - t0
        create_s = t_created - t0
        run_s = (last_final - first_running) if first_running is not None else None
        pool = next(b for b in measured if b.name == "process_pool")
        mpi = next((b for b in measured if b.name == "mpiexec_loop"), None)
        reference = mpi if self.mode == "mpi" and mpi is not None else pool

        jobs_per_s = stats.rate(n, last_final)
        run_jobs_per_s = stats.rate(n, run_s) if run_s else None
        queue_ms = [(r.running_s - r.created_s) * 1000 for r in rows if r.running_s is not None]
        run_ms = [
            (r.final_s - r.running_s) * 1000
            for r in rows
            if r.running_s is not None and r.final_s is not None
        ]
        busy: list[tuple[float, float]] = []
        for r in rows:
            end = r.done_s if r.done_s is not None else r.final_s
            if r.running_s is not None and end is not None:
                busy.append((r.running_s, end))
        busy_s = sum(max(0.0, b - a) for a, b in busy)
        figures: dict[str, float | None] = {
            "jobs_per_s": jobs_per_s,
            "run_jobs_per_s": run_jobs_per_s,
            "create_jobs_per_s": stats.rate(n, create_s),
            "startup_s": (first_running - (t_launch - t0)) if first_running is not None else None,
            "overall_s": last_final,
            "ms_per_job_slot": w * last_final / n * 1000 if n else None,
            "overhead_ms_per_job": (w * run_s / n - w / pool.jobs_per_s) * 1000 if run_s and n else None,
            "slot_utilization": busy_s / (w * run_s) if run_s else None,
            "server_requests": float(requests) if requests is not None else None,
            "server_requests_per_s": requests / last_final if requests is not None and last_final else None,
            "requests_per_job": (requests - harness_requests) / n if requests is not None and n else None,
            "server_peak_rss_mb": rss.peak_mb("server"),
            "launcher_peak_rss_mb": rss.peak_mb("launcher"),
            "baseline_pool_jobs_per_s": pool.jobs_per_s,
            "baseline_mpiexec_jobs_per_s": mpi.jobs_per_s if mpi else None,
            "ratio_run": stats.ratio(run_jobs_per_s, reference.jobs_per_s),
            "ratio_overall": stats.ratio(jobs_per_s, reference.jobs_per_s),
            "ratio_run_vs_pool": stats.ratio(run_jobs_per_s, pool.jobs_per_s),
            "jobs_failed": float(n - final_states.get("JOB_FINISHED", 0)),
            "run_errors": float(len(self.errors)),
        }
        figures.update(stats.latency_figures("queue", queue_ms))
        figures.update(stats.latency_figures("run", run_ms))
        step = stats.time_step(last_final, n)
        # completions at the time the launcher saw each job end (its RUN_DONE timestamp);
        # the final Events are written per reported batch, which would make the curve spiky.
        ended = [end for _, end in busy]
        phases = [
            Phase(
                name="create",
                start_s=0.0,
                end_s=create_s,
                jobs=n,
                seconds=create_s,
                jobs_per_s=stats.rate(n, create_s),
            ),
            Phase(
                name="startup",
                start_s=t_launch - t0,
                end_s=first_running or t_launch - t0,
                jobs=0,
                seconds=(first_running or t_launch - t0) - (t_launch - t0),
                jobs_per_s=None,
            ),
            Phase(
                name="run",
                start_s=first_running or 0.0,
                end_s=last_final,
                jobs=n,
                seconds=run_s or 0.0,
                jobs_per_s=run_jobs_per_s,
            ),
            Phase(
                name="overall",
                start_s=0.0,
                end_s=last_final,
                jobs=n,
                seconds=last_final,
                jobs_per_s=jobs_per_s,
            ),
        ]
        return Trial(
            index=index,
            started_at=started_at,
            seconds=last_final,
            phases=phases,
            figures=figures,
            baselines=measured,
            raw={"harness_requests": [float(harness_requests)]},
            notes=[
                f"server requests counted from the server's {request_source}"
                if request_source
                else "server requests: not counted (a server started elsewhere has no /_bench/requests "
                "or /metrics counter)",
                *(
                    []
                    if self.stack.server.pid is not None
                    else ["server memory: not measured (the server runs outside this machine's view)"]
                ),
            ],
            series={
                "running": stats.concurrency(busy, step=step),
                "completions_per_s": stats.completions(ended, step=step),
            },
            final_states=final_states,
        )
