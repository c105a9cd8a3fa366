"""One throughput trial: N jobs through a real server and one or more real launchers.

The clock starts at the first submission and stops at the last job's final Event.
Per-job times come from the server's Events (the launcher reports when things
really happened), so the harness's own polling does not blur them. Every tolu
process of the trial (the server, each launcher's processes) is watched for its
role, CPU time and memory (harness/bench/processes.py); the CPU figures count the
run phase only, first RUNNING to last final.

Several launchers (``launchers``) stand for several allocations: each opens its own
session against the one server. Each launcher has ``nodes`` nodes of ``workers``
slots; more than one node are made-up hosts whose ranks Hydra starts on this machine
(``mpiexec -launcher fork``), so serial mode runs its coordinator and one worker rank
per node. The baselines run at the same total concurrency.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from harness.bench import baselines, filesystem, history, stats
from harness.bench.figures import STARTING_ROLES, throughput_figures
from harness.bench.history import FINAL, History
from harness.bench.machine import mpiexec_path
from harness.bench.processes import ProcessWatch
from harness.bench.schema import Baseline, Phase, Scenario, Trial
from harness.bench.stack import Launcher, RequestCounter, Stack, start_launcher
from harness.bench.tasks import Task
from harness.waiting import WaitTimeout, wait_until


class BenchError(RuntimeError):
    """A trial that could not finish (stuck jobs, dead launcher); says what and where."""


#: the completion poll's shortest and longest wait (see next_poll)
POLL_MIN_S = 0.5
POLL_MAX_S = 10.0


def next_poll(done: int, jobs: int, elapsed_s: float) -> float:
    """How long to wait before the next count of final jobs: half the time the rest
    should take at the rate so far, within [POLL_MIN_S, POLL_MAX_S].

    Each count is a query over every job of the trial, so on the server it costs in
    proportion to the run's size; polled at a fixed half second, a 30,000-job run paid
    a tenth of the server's CPU for the harness's own questions. Halving the wait as
    the end nears keeps the last poll within POLL_MIN_S of it.
    """
    if done <= 0 or elapsed_s <= 0:
        return POLL_MIN_S
    eta = (jobs - done) * elapsed_s / done
    return max(POLL_MIN_S, min(POLL_MAX_S, eta / 2))


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


@dataclass(frozen=True)
class Marks:
    """Moments of a trial, epoch seconds."""

    t0: float
    created: float
    launched: float
    seen: float


@dataclass
class ThroughputScenario:
    """``mode`` serial|mpi, ``jobs`` jobs of ``task`` on ``launchers`` launchers of ``workers`` slots."""

    stack: Stack
    mode: str
    jobs: int
    workers: int
    task: Task
    baseline_jobs: int
    timeout_s: float
    progress: Progress
    launchers: int = 1
    #: nodes per launcher (more than one: made-up hosts, their ranks started here by Hydra)
    nodes: int = 1
    #: seconds between progress polls (GET /jobs/counts); None: next_poll's, which waits
    #: longer while much is left, so the benchmark's own requests stay a small load on
    #: the server it measures.
    poll_s: float | None = None
    #: RUN_ERROR/RUN_TIMEOUT events of the last trial, with their data (return code, output tail).
    errors: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.mode

    @property
    def slots(self) -> int:
        return self.launchers * self.nodes * self.workers

    def describe(self) -> Scenario:
        on = f"{self.workers} slots"
        if self.nodes > 1:
            on = f"{self.nodes} nodes x {on}"
        if self.launchers > 1:
            on = f"{self.launchers} launchers x {on}"
        return Scenario(
            name=self.mode,
            description=f"{self.jobs} `{self.task.spec}` jobs, {self.mode} mode, {on}",
            parameters={
                "mode": self.mode,
                "jobs": self.jobs,
                "workers": self.workers,
                "launchers": self.launchers,
                "nodes": self.nodes,
                "task": self.task.spec,
                "task_argv": list(self.task.argv),
                "baseline_jobs": self.baseline_jobs,
                "server": self.stack.server.kind,
                "database": self.stack.database.kind,
            },
            figure_info=throughput_figures(self.task, server_memory=self.stack.server.pid is not None),
        )

    # ------------------------------------------------------------ baselines

    def measure_baselines(self, jobs: int) -> list[Baseline]:
        out = [
            baselines.process_pool(self.task.argv, workers=self.slots, jobs=jobs),
            baselines.process_pool(
                self.task.argv,
                workers=self.slots,
                jobs=jobs,
                workdirs=self.stack.site_dir / "data" / "baseline",
            ),
        ]
        if self.mode == "mpi":
            mpiexec = mpiexec_path()
            if mpiexec is None:
                raise BenchError(
                    "MPI mode needs an mpiexec: the facility's on PATH, or the mpich wheel's "
                    "beside this Python (pip install 'tolu[mpich]')"
                )
            out.append(baselines.mpiexec_loop(mpiexec, self.task.argv, workers=self.slots, jobs=jobs))
        return out

    # ------------------------------------------------------------ the trial

    def run(self, index: int) -> TrialOutput:
        # what a job's directory costs on the site's file system now (kept: see the module)
        fs_us = filesystem.workdir_us(self.stack.site_dir / "data" / "fs-probe")
        # Half of the baseline runs before tolu's run and half after, so a machine whose
        # load changes during the trial weighs on both sides of the ratio alike.
        before = self.measure_baselines(max(1, self.baseline_jobs // 2))
        stack = self.stack
        client = stack.client
        app_id = stack.app_for(self.task, self.workers)
        tag = f"{self.mode}-{index}-{int(time.time() * 1000)}"
        tags = {"bench": tag}
        spec: dict[str, Any] = {
            "app_id": app_id,
            "tags": tags,
            "resources": {"node_packing_count": self.workers},
        }
        counter = RequestCounter(stack.server)
        requests_before = counter.count()
        routes_before = dict(counter.by_route)
        watch = ProcessWatch()
        watch.watch("server", stack.server.pid)
        watch.start()
        harness_requests = 0

        started_at = datetime.now(UTC)
        t0 = time.time()
        jobs: dict[int, float] = {}
        for start in range(0, self.jobs, 10_000):
            jobs.update(history.created(client.jobs.bulk_create([spec] * min(10_000, self.jobs - start))))
            harness_requests += 1
        t_created = time.time()

        launchers: list[Launcher] = []
        try:
            for i in range(self.launchers):
                launcher = start_launcher(stack, self.mode)
                launchers.append(launcher)
                watch.watch(f"launcher-{i}", launcher.pid)
            t_launch = time.time()
            harness_requests += self._wait(launchers, tags)
            # the last look at the launchers' processes before they are told to stop
            watch.sample()
        finally:
            t_stop = time.time()
            for i, launcher in enumerate(launchers):
                watch.forget(f"launcher-{i}")
                launcher.stop()
            stop_s = time.time() - t_stop
            watch.stop()
        t_seen = time.time()
        requests_after = counter.count()
        routes = {
            route: n - routes_before.get(route, 0)
            for route, n in counter.by_route.items()
            if n - routes_before.get(route, 0) > 0
        }

        after = self.measure_baselines(max(1, self.baseline_jobs - self.baseline_jobs // 2))
        measured = baselines.combine(before, after)
        past = history.read(client, jobs, t0=t0)
        self.errors = past.errors
        rows = self._rows(index, past)
        trial = self._derive(
            index,
            started_at,
            rows,
            past,
            measured,
            Marks(t0=t0, created=t_created, launched=t_launch, seen=t_seen),
            watch=watch,
            requests=None
            if requests_before is None or requests_after is None
            else requests_after - requests_before,
            request_source=counter.source,
            harness_requests=harness_requests,
        )
        trial.requests_by_route = dict(sorted(routes.items(), key=lambda kv: -kv[1]))
        trial.figures["fs_workdir_us"] = fs_us
        trial.raw["launcher_stop_s"] = [stop_s]
        if self.errors:
            trial.notes.append(
                f"{len(self.errors)} RUN_ERROR/RUN_TIMEOUT events (jobs retried up to their limit)"
            )
            trial.notes.extend(self.errors[:5])
        return TrialOutput(trial, rows)

    def _wait(self, launchers: list[Launcher], tags: dict[str, str]) -> int:
        """Poll until every job is final; the number of requests it made."""
        client = self.stack.client
        requests = 0
        self.progress.begin(f"{self.mode}: {self.jobs} x {self.task.spec} on {self.slots} slots", self.jobs)

        def final_counts() -> dict[str, int]:
            """Jobs per state; raises when a launcher ended before every job did."""
            nonlocal requests
            counts = client.jobs.counts(site_id=self.stack.site_id, tags=tags)
            requests += 1
            done = _final(counts)
            self.progress.update(done)
            dead = [lp for lp in launchers if not lp.alive()]
            if done < self.jobs and dead:
                raise BenchError(
                    f"the {self.mode} launcher (pid {dead[0].pid}) exited with {self.jobs - done} jobs "
                    f"not final; states {dict(counts)}; logs in {dead[0].log_dir}; "
                    f"its output ends: {dead[0].tail()[-800:]}"
                )
            return counts

        started = time.monotonic()

        def interval(counts: Mapping[Any, int]) -> float:
            return self.poll_s or next_poll(_final(counts), self.jobs, time.monotonic() - started)

        try:
            wait_until(
                final_counts,
                check=lambda counts: _final(counts) >= self.jobs,
                timeout=self.timeout_s,
                interval=interval,
                what=f"{self.jobs} jobs in a final state",
            )
        except WaitTimeout as exc:
            last: Mapping[Any, int] = exc.last if isinstance(exc.last, Mapping) else {}
            raise BenchError(
                f"{self.jobs - _final(last)} of {self.jobs} jobs not final after {self.timeout_s:.0f}s; "
                f"states {dict(last)}; launcher logs in {launchers[0].log_dir}"
            ) from None
        finally:
            self.progress.end()
        return requests

    def _rows(self, index: int, past: History) -> list[JobRow]:
        at = past.at
        rows = []
        for jid in sorted(past.created):
            done = at["RUN_DONE"].get(jid) or at["RUN_ERROR"].get(jid) or at["RUN_TIMEOUT"].get(jid)
            final = next((at[s][jid] for s in FINAL if jid in at[s]), None)
            rows.append(
                JobRow(
                    self.mode,
                    index,
                    jid,
                    past.created[jid],
                    at["RUNNING"].get(jid),
                    done,
                    final,
                    past.state[jid],
                )
            )
        return rows

    def _derive(
        self,
        index: int,
        started_at: datetime,
        rows: list[JobRow],
        past: History,
        measured: list[Baseline],
        marks: Marks,
        *,
        watch: ProcessWatch,
        requests: int | None,
        request_source: str | None,
        harness_requests: int,
    ) -> Trial:
        n = self.jobs
        w = self.slots
        t0 = marks.t0
        final_states = past.final_states()
        running = [r.running_s for r in rows if r.running_s is not None]
        finals = [r.final_s for r in rows if r.final_s is not None]
        first_running = min(running) if running else None
        last_final = max(finals) if finals else marks.seen - t0
        create_s = marks.created - t0
        launch_s = marks.launched - t0
        run_s = (last_final - first_running) if first_running is not None else None
        pool = next(b for b in measured if b.name == "process_pool")
        pool_dirs = next((b for b in measured if b.name == "process_pool_workdirs"), None)
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
        done_ms = [
            (r.done_s - r.running_s) * 1000 for r in rows if r.running_s is not None and r.done_s is not None
        ]
        dispatch_ms = [
            s * 1000
            for s in stats.dispatch_waits(
                [(r.created_s, r.running_s) for r in rows if r.running_s is not None],
                [end for _, end in busy],
                slots=w,
                ready=first_running or 0.0,
            )
        ]
        busy_s = sum(max(0.0, b - a) for a, b in busy)
        figures: dict[str, float | None] = {
            "jobs_per_s": jobs_per_s,
            "run_jobs_per_s": run_jobs_per_s,
            "create_jobs_per_s": stats.rate(n, create_s),
            "startup_s": (first_running - launch_s) if first_running is not None else None,
            "overall_s": last_final,
            "ms_per_job_slot": w * last_final / n * 1000 if n else None,
            "overhead_ms_per_job": (w * run_s / n - w / pool.jobs_per_s) * 1000 if run_s and n else None,
            "slot_utilization": busy_s / (w * run_s) if run_s else None,
            "server_requests": float(requests) if requests is not None else None,
            "server_requests_per_s": requests / last_final if requests is not None and last_final else None,
            "requests_per_job": (requests - harness_requests) / n if requests is not None and n else None,
            "server_peak_rss_mb": watch.peak_mb("server"),
            "server_peak_pss_mb": watch.peak_mb("server", pss=True),
            "launcher_peak_rss_mb": watch.peak_mb("launcher"),
            "launcher_peak_pss_mb": watch.peak_mb("launcher", pss=True),
            "baseline_pool_jobs_per_s": pool.jobs_per_s,
            "baseline_mpiexec_jobs_per_s": mpi.jobs_per_s if mpi else None,
            "ratio_run": stats.ratio(run_jobs_per_s, reference.jobs_per_s),
            "ratio_overall": stats.ratio(jobs_per_s, reference.jobs_per_s),
            "ratio_run_vs_pool": stats.ratio(run_jobs_per_s, pool.jobs_per_s),
            "baseline_pool_workdirs_jobs_per_s": pool_dirs.jobs_per_s if pool_dirs else None,
            "ratio_run_vs_pool_workdirs": stats.ratio(run_jobs_per_s, pool_dirs.jobs_per_s)
            if pool_dirs
            else None,
            "jobs_failed": float(n - final_states.get("JOB_FINISHED", 0)),
            "run_errors": float(len(past.errors)),
        }
        figures.update(stats.latency_figures("queue", queue_ms))
        figures.update(stats.latency_figures("run", run_ms))
        figures.update(stats.latency_figures("run_done", done_ms))
        figures.update(stats.latency_figures("dispatch", dispatch_ms))
        window = (t0 + (first_running or launch_s), t0 + last_final)
        figures.update(cpu_figures(watch, window, jobs=n, run_s=run_s, pool=pool, pool_workdirs=pool_dirs))
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
                start_s=launch_s,
                end_s=first_running or launch_s,
                jobs=0,
                seconds=(first_running or launch_s) - launch_s,
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
        notes = [
            f"server requests counted from the server's {request_source}"
            if request_source
            else "server requests: not counted (a server started elsewhere has no /_bench/requests "
            "or /metrics counter)",
        ]
        if self.stack.server.pid is None:
            notes.append("server memory and CPU: not measured (the server runs outside this machine's view)")
        if not watch.available:
            notes.append("CPU time and memory: not measured (no /proc on this system)")
        guessed = sorted({p.role for p in watch.tolu_processes() if p.source in ("command line", "parent")})
        if guessed:
            notes.append(
                "roles guessed from command lines (processes that did not announce one, runner/roles.py): "
                + ", ".join(guessed)
            )
        return Trial(
            index=index,
            started_at=started_at,
            seconds=last_final,
            phases=phases,
            figures=figures,
            baselines=measured,
            raw={"harness_requests": [float(harness_requests)]},
            notes=notes,
            series={
                "running": stats.concurrency(busy, step=step),
                "completions_per_s": stats.completions(ended, step=step),
            },
            final_states=final_states,
            processes=watch.rows(*window),
        )


def cpu_figures(
    watch: ProcessWatch,
    window: tuple[float, float],
    *,
    jobs: int,
    run_s: float | None,
    pool: Baseline | None,
    pool_workdirs: Baseline | None = None,
) -> dict[str, float | None]:
    """CPU per job of each role in ``window`` (epoch seconds), and the starters against the
    pool (and against the pool whose tasks each get a directory and an output file)."""
    out: dict[str, float | None] = {"cpu_ms_per_job_tolu": None, "ratio_cpu_start_vs_pool": None}
    if not watch.available or not jobs:
        return out
    usage = watch.usage(*window)
    for role, used in usage.items():
        out[f"cpu_ms_per_job_{role}"] = used.cpu_s / jobs * 1000
        out[f"processes_{role}"] = float(used.processes)
    total = sum(u.cpu_s for u in usage.values())
    out["cpu_ms_per_job_tolu"] = total / jobs * 1000
    pool_ms = pool.cpu_s / pool.jobs * 1000 if pool is not None and pool.cpu_s and pool.jobs else None
    out["baseline_pool_cpu_ms_per_task"] = pool_ms
    starting = [usage[r].cpu_s for r in STARTING_ROLES if r in usage]
    if starting and pool_ms:
        out["ratio_cpu_start_vs_pool"] = sum(starting) / jobs * 1000 / pool_ms
    dirs_ms = (
        pool_workdirs.cpu_s / pool_workdirs.jobs * 1000
        if pool_workdirs is not None and pool_workdirs.cpu_s and pool_workdirs.jobs
        else None
    )
    if dirs_ms:
        out["baseline_pool_workdirs_cpu_ms_per_task"] = dirs_ms
        if starting:
            out["ratio_cpu_start_vs_pool_workdirs"] = sum(starting) / jobs * 1000 / dirs_ms
    server = usage.get("server")
    if server is not None:
        out["server_cpu_share"] = server.cpu_s / total if total else None
        out["server_cpu_cores"] = server.cpu_s / run_s if run_s else None
    return out
