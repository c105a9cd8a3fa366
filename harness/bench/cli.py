"""``tolu bench``: throughput, launcher and API benchmarks with their baselines.

Every subcommand runs real components (server, site, launcher) on this machine,
measures references in the same run, and writes DIR/bench.json (+ its JSON
Schema), DIR/bench.csv and DIR/report.html through one engine (harness/bench).
This module parses the options and prints; the runs are harness/bench/runs.py.
It plugs into ``tolu`` through the entry-point group ``tolu.commands`` (pyproject.toml);
without the ``[bench]`` extra every subcommand stops at one line saying so.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from harness.bench.numbers import fmt as _fmt
from harness.bench.processes import ROLES
from runner.extras import require_extra

if TYPE_CHECKING:
    from harness.bench.engine import RunOutcome
    from harness.bench.runs import RunSettings
    from harness.bench.schema import BenchResult
    from harness.publish import Target

console = Console(stderr=True)
out = Console()


class RichProgress:
    """Jobs done and the current rate (over the last few polls) on stderr."""

    def __init__(self) -> None:
        self._progress: Progress | None = None
        self._task: TaskID | None = None
        self._window: list[tuple[float, int]] = []

    def begin(self, description: str, total: int) -> None:
        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]:>8} jobs/s"),
            TimeElapsedColumn(),
            console=console,
            transient=False,
        )
        self._progress.start()
        self._task = self._progress.add_task(description, total=total, rate="-")
        self._window = [(time.monotonic(), 0)]

    def update(self, done: int) -> None:
        if self._progress is None or self._task is None:
            return
        now = time.monotonic()
        self._window.append((now, done))
        self._window = self._window[-6:]
        (t_a, d_a), (t_b, d_b) = self._window[0], self._window[-1]
        rate = f"{(d_b - d_a) / (t_b - t_a):,.0f}" if t_b > t_a else "-"
        self._progress.update(self._task, completed=done, rate=rate)

    def end(self) -> None:
        if self._progress is not None:
            self._progress.stop()
        self._progress = None


# ---------------------------------------------------------------- shared options and output

THROUGHPUT_KEYS = (
    "jobs_per_s",
    "run_jobs_per_s",
    "baseline_pool_jobs_per_s",
    "baseline_mpiexec_jobs_per_s",
    "ratio_run",
    "ratio_overall",
    "ratio_run_vs_pool",
    "baseline_pool_workdirs_jobs_per_s",
    "ratio_run_vs_pool_workdirs",
    "startup_s",
    "overhead_ms_per_job",
    "queue_p50_ms",
    "queue_p99_ms",
    "dispatch_p50_ms",
    "run_done_p50_ms",
    "run_p50_ms",
    "run_p99_ms",
    "slot_utilization",
    "server_requests",
    "requests_per_job",
    *(f"cpu_ms_per_job_{role}" for role in ROLES),
    "cpu_ms_per_job_tolu",
    "baseline_pool_cpu_ms_per_task",
    "ratio_cpu_start_vs_pool",
    "baseline_pool_workdirs_cpu_ms_per_task",
    "ratio_cpu_start_vs_pool_workdirs",
    "server_cpu_share",
    "server_cpu_cores",
    "server_peak_rss_mb",
    "launcher_peak_rss_mb",
    "launcher_peak_pss_mb",
    "jobs_failed",
    "run_errors",
)
API_KEYS = (
    "create_jobs_per_s",
    "cycle_jobs_per_s",
    "acquire_ms_per_batch",
    "update_ms_per_batch",
    "page_p50_ms",
    "page_p90_ms",
    "page_max_ms",
    "cycle_server_cpu_ms_per_job",
    "table_jobs",
    "cycle_server_cpu_cores",
    "cycle_database_cpu_ms_per_job",
    "cycle_database_cpu_cores",
    "cycle_client_cpu_cores",
    "server_processes",
    "busiest_worker_cpu_share",
    "jobs_acquired_twice",
    "jobs_not_cycled",
    "server_peak_rss_mb",
    "server_process_peak_rss_mb",
    "ratio_create_vs_sqlite",
    "ratio_cycle_vs_sqlite",
    "ratio_cycle_vs_one_worker",
)
DAG_KEYS = ("run_jobs_per_s", "run_request_s", "run_server_cpu_ms_per_job", "status_ms", "server_peak_rss_mb")
CHAOS_KEYS = (
    "jobs_lost",
    "run_twice_concurrently",
    "task_runs_concurrent",
    "jobs_finished",
    "jobs_failed",
    "jobs_rerun",
    "unrecorded_starts",
    "replayed_starts",
    "faults",
    "unplanned_exits",
    "overall_s",
    "jobs_per_s",
)


COMMON = (
    "server",
    "repeat",
    "out_dir",
    "compare_path",
    "fail_on",
    "gate_on",
    "keep_work",
    "quiet_wait",
    "quiet_load",
)
#: the options of publishing and of the history gate (docs/results.md)
PUBLISHING = ("publish", "publish_site", "location", "locations_files", "history_runs")


@dataclass(frozen=True)
class Publishing:
    """Where a run is published (``--publish``) and its history read (``--against-history``)."""

    to: Target | None
    location: str


def _settings(kw: dict[str, Any]) -> tuple[RunSettings, bool, Publishing | None]:
    """Take the common options out of ``kw``: a :class:`harness.bench.runs.RunSettings`, --check,
    and where the run is published. The server and the site are asked now, before the run starts."""
    from harness.bench.runs import RunSettings

    check = bool(kw.pop("check"))
    publish_it, site, location, files, history_runs = (kw.pop(name) for name in PUBLISHING)
    common = {name: kw.pop(name) for name in COMMON if name in kw}
    if history_runs is not None and common.get("compare_path") is not None:
        raise click.UsageError("--compare and --against-history are two baselines: give one")
    from harness.bench.figures import COMPARED_PREFIX

    common["gate_on"] = tuple(common.get("gate_on") or ())
    if common["gate_on"] and common.get("fail_on") is None:
        raise click.UsageError("--gate-on names the ratios --fail-on may fail on: give --fail-on too")
    for name in common["gate_on"]:
        if not name.startswith(COMPARED_PREFIX):
            raise click.UsageError(f"--gate-on {name}: only ratios ({COMPARED_PREFIX}...) are compared")
    publishing = None
    history = None
    if publish_it or history_runs is not None:
        from harness.bench.history_gate import HistoryGate
        from harness.publish import PublishError, detect_location, target

        try:
            where = detect_location(location, files)
            to = target(site)
        except PublishError as exc:
            raise click.ClickException(str(exc)) from None
        publishing = Publishing(to if publish_it else None, where)
        if history_runs is not None:
            history = HistoryGate(to.client, where, history_runs)
    settings = RunSettings(argv=["tolu", "bench", *sys.argv[2:]], history=history, **common)
    return settings, check, publishing


def common_options(f: Any) -> Any:
    return _common(f, server=True)


def _common_without_server(f: Any) -> Any:
    return _common(f, server=False)


def _common(f: Any, *, server: bool) -> Any:
    options = [
        click.option(
            "--server",
            default="process",
            show_default=True,
            help="process (a local `python -m runner.server`), container, or the URL of a running server",
        ),
        click.option(
            "--repeat",
            type=click.IntRange(1, 100),
            default=1,
            show_default=True,
            help="trials per scenario; the summary gives min/median/max",
        ),
        click.option(
            "--out",
            "out_dir",
            type=click.Path(file_okay=False, path_type=Path),
            default=None,
            help="output directory [default: artifacts/bench-<command>-<timestamp>]",
        ),
        click.option(
            "--compare",
            "compare_path",
            type=click.Path(exists=True, dir_okay=False, path_type=Path),
            default=None,
            help="an earlier bench.json to compare the ratios with",
        ),
        click.option(
            "--fail-on",
            type=click.FloatRange(0),
            default=None,
            metavar="PERCENT",
            help="with --compare or --against-history: exit 1 when a ratio got worse by more than PERCENT",
        ),
        click.option(
            "--gate-on",
            multiple=True,
            metavar="RATIO",
            help="with --fail-on: only this ratio can fail the run (repeatable; the others are still "
            "shown) [default: every ratio]",
        ),
        click.option(
            "--against-history",
            "history_runs",
            type=click.IntRange(1, 1000),
            default=None,
            metavar="N",
            help="compare each ratio with the median of the last N published runs of the same scenario "
            "(command, name, parameters) at this location; with --fail-on, exit 1 on a regression",
        ),
        click.option(
            "--publish",
            is_flag=True,
            help="keep the run on your tolu server (your `tolu login`, or --site's token): the web "
            "interface's trends, and the history of later --against-history runs",
        ),
        click.option(
            "--site",
            "publish_site",
            metavar="SITE",
            help="the site --publish and --against-history use: a site directory, or the name or id "
            "of a site of your login [default: your login's only site]",
        ),
        click.option(
            "--location",
            metavar="NAME",
            help="the harness location the run is published as and compared at [default: detected as "
            "for a test run: $TOLU_LOCATION, then --locations files and the shipped ones]",
        ),
        click.option(
            "--locations",
            "locations_files",
            multiple=True,
            type=click.Path(exists=True, dir_okay=False, path_type=Path),
            metavar="FILE",
            help="a locations YAML file to detect the location with (repeatable; as pytest --locations)",
        ),
        click.option("--keep-work", is_flag=True, help="keep the server data and site directory"),
        click.option(
            "--quiet-wait",
            type=click.FloatRange(0),
            default=0.0,
            metavar="SECONDS",
            help="before the first trial, wait SECONDS, then until the 1-minute load is under "
            "--quiet-load (at most 10 minutes more); the notes say what it came to. On some disks a "
            "run soon after a large deletion reads slow for minutes: 180 is a good wait there "
            "(docs/performance.md) [default: start at once]",
        ),
        click.option(
            "--quiet-load",
            type=click.FloatRange(0, min_open=True),
            default=1.0,
            show_default=True,
            metavar="LOAD",
            help="with --quiet-wait: the 1-minute load average to wait for",
        ),
        click.option(
            "--check",
            is_flag=True,
            help="exit 1 unless every figure that has an aim meets it (median over the trials); "
            "a figure with an aim that could not be measured fails too",
        ),
    ]
    if not server:
        options = options[1:]
    for option in reversed(options):
        f = option(f)
    return f


_MARK_STYLE = {"met": "[green]✓[/green]", "missed": "[red]✗[/red]", "unmeasured": "[yellow]?[/yellow]"}


def print_summary(result: BenchResult, keys: Sequence[str]) -> None:
    for scenario in result.scenarios:
        table = Table(title=f"{scenario.name}: {scenario.description}", title_justify="left")
        table.add_column("figure")
        table.add_column("median", justify="right")
        if len(scenario.trials) > 1:
            table.add_column("min", justify="right")
            table.add_column("max", justify="right")
        table.add_column("unit")
        table.add_column("aim")
        table.add_column("")
        outcomes = {v.figure: v.outcome for v in scenario.verdicts}
        # the figures asked for, then any other that has a verdict
        shown = [*keys, *(v.figure for v in scenario.verdicts if v.figure not in keys)]
        for key in shown:
            stat = scenario.summary.get(key)
            info = scenario.figure_info.get(key)
            if stat is None or info is None or (stat.median is None and key not in outcomes):
                continue
            cells = [key, _fmt(stat.median, info.unit)]
            if len(scenario.trials) > 1:
                cells += [_fmt(stat.min, info.unit), _fmt(stat.max, info.unit)]
            cells += [info.unit, info.aim or "", _MARK_STYLE.get(outcomes.get(key, ""), "")]
            style = "bold" if key.startswith("ratio_") else None
            table.add_row(*cells, style=style)
        out.print(table)
    for note in result.notes:
        out.print(f"[yellow]note:[/yellow] {note}")
    check = result.check
    if check is not None and check.aims:
        colour = "green" if check.passed else "red"
        out.print(f"[{colour}]aims met: {check.met} of {check.aims}[/{colour}]")
    comp = result.comparison
    if comp is not None and comp.rows:
        history = comp.source == "history"
        title = (
            f"compared with the median of the published runs at {comp.location} ({comp.baseline_path})"
            if history
            else f"compared with {comp.baseline_path}"
        )
        table = Table(title=title, title_justify="left")
        for col in ("scenario", "figure", "history" if history else "before", "after", "change %", ""):
            table.add_column(col)
        if history:
            table.add_column("runs", justify="right")
        for row in comp.rows:
            cells = [
                row.scenario,
                row.figure,
                _fmt(row.before, "ratio"),
                _fmt(row.after, "ratio"),
                _fmt(row.change_percent, ""),
                "[red]REGRESSED[/red]" if row.regressed else "ok" if row.gated else "not gated",
            ]
            table.add_row(*cells, *([str(row.runs or "")] if history else []))
        out.print(table)
    if comp is not None:
        for note in comp.notes:
            out.print(f"[yellow]note:[/yellow] {note}")


def _run(
    keys: Sequence[str],
    start: Callable[[ModuleType], RunOutcome],
    *,
    check: bool = False,
    publishing: Publishing | None = None,
) -> None:
    """Run ``start(runs)`` (one command's run, harness/bench/runs.py) and print what it wrote.

    With ``check``, exit 1 when an aim was missed or could not be measured; with ``publishing``,
    keep the run on the server (also a run that regressed: it is part of the history). The runs
    are imported here, not at the top, so that ``tolu --help`` does not load the benchmark stack.
    """
    from harness.bench import runs

    try:
        outcome = start(runs)
    except runs.USER_ERRORS as exc:
        raise click.ClickException(str(exc)) from None
    print_summary(outcome.result, keys)
    out.print(f"bench.json: {outcome.json_path.resolve()}", soft_wrap=True)
    out.print(f"bench.csv:  {outcome.csv_path.resolve()}", soft_wrap=True)
    out.print(f"[bold]report:[/bold]     {outcome.report_path.resolve()}", soft_wrap=True)
    if publishing is not None and publishing.to is not None:
        from harness.publish import Publication, PublishError, publish

        try:
            kept = publish(publishing.to, Publication.of_bench(outcome.result, location=publishing.location))
        except PublishError as exc:
            raise click.ClickException(str(exc)) from None
        out.print(f"published:  {publishing.to.page(kept)}", soft_wrap=True)
    comparison = outcome.result.comparison
    if comparison is not None and comparison.regressed:
        against = (
            f"the median of the published runs at {comparison.location}"
            if comparison.source == "history"
            else comparison.baseline_path
        )
        raise click.ClickException(
            f"a ratio regressed by more than {comparison.fail_on_percent:g}% against {against} "
            "(see the table above)"
        )
    if check and outcome.missed:
        raise click.ClickException(f"{len(outcome.missed)} aim(s) not met: " + "; ".join(outcome.missed))


# ---------------------------------------------------------------- commands


@click.group()
def bench() -> None:
    """For tolu's developers: benchmarks with baselines measured in the same run; reports in artifacts/.

    Figures with an aim show ✓ or ✗; --check exits 1 unless all are met.

    \b
    tolu bench throughput                 # 2,000 serial + 500 MPI-mode /bin/true jobs (< 2 min)
    tolu bench launcher --check           # the launcher's figures: 2,000 jobs, 2 slots, both modes
    tolu bench api                        # bulk create, acquire/complete cycles, page latency
    tolu bench throughput --jobs 100000 --mode serial   # the scale check
    tolu bench chaos                      # jobs while launcher, agent, server, PostgreSQL are killed
    """
    # plots and the report: one line naming the extra instead of an ImportError at the end of a run
    require_extra("bench", "tolu bench")


@bench.command()
@click.option(
    "--jobs",
    "-n",
    type=click.IntRange(1),
    default=None,
    help="jobs per trial and mode [default: serial 2000, mpi 500]",
)
@click.option("--mode", type=click.Choice(["serial", "mpi", "both"]), default="both", show_default=True)
@click.option(
    "--workers",
    "-w",
    type=click.IntRange(1),
    default=2,
    show_default=True,
    help="worker slots (and baseline concurrency)",
)
@click.option(
    "--launchers",
    type=click.IntRange(1, 256),
    default=1,
    show_default=True,
    help="launchers at once against the one server (allocations), each with its own session",
)
@click.option(
    "--nodes",
    type=click.IntRange(1, 1024),
    default=1,
    show_default=True,
    help="nodes per launcher, each with --workers slots; more than one: made-up hosts whose ranks "
    "mpiexec starts here (-launcher fork), so serial mode runs a coordinator and a worker rank per node",
)
@click.option("--database", type=click.Choice(["sqlite", "postgresql"]), default="sqlite", show_default=True)
@click.option("--task", default="true", show_default=True, help="true | sleep:SECONDS | python-noop")
@click.option(
    "--baseline-jobs",
    type=click.IntRange(1),
    default=None,
    help="tasks per baseline measurement [default: min(jobs, 5000)]",
)
@click.option(
    "--timeout",
    type=click.FloatRange(1),
    default=None,
    help="seconds a trial may take [default: 120 + jobs/20]",
)
@common_options
def throughput(**kw: Any) -> None:
    """N jobs through a real server and launcher vs. the raw spawn rate.

    Measures from the first submission to the last job final; baselines
    (ProcessPoolExecutor(W), bare `mpiexec -n 1` loop) run in the same trial and
    the ratios to them are printed, with the CPU time per job of every tolu
    process (by role: server, coordinator, starter...). Figures with an aim get
    a verdict; --check exits 1 unless all are met. Examples:

    \b
      tolu bench throughput --jobs 5000 --mode serial --repeat 3 --check
      tolu bench throughput --mode serial --task sleep:1 --workers 256 --jobs 2560
      tolu bench throughput --mode serial --launchers 8 --workers 2 --task sleep:0.2 --jobs 800
      tolu bench throughput --mode serial --nodes 4 --workers 2 --jobs 4000
    """
    settings, check, publishing = _settings(kw)
    _run(
        THROUGHPUT_KEYS,
        lambda runs: runs.throughput("throughput", settings, progress=RichProgress, **kw),
        check=check,
        publishing=publishing,
    )


@bench.command()
@click.option("--database", type=click.Choice(["sqlite", "postgresql"]), default="sqlite", show_default=True)
@common_options
def launcher(**kw: Any) -> None:
    """The launcher benchmark: 2,000 /bin/true jobs, 2 slots, serial and MPI mode.

    Serial mode vs ProcessPoolExecutor(2), MPI mode vs a 2-way bare
    `mpiexec -n 1 /bin/true` loop; aim: ratio >= 0.8 for both.
    """
    settings, check, publishing = _settings(kw)
    _run(
        THROUGHPUT_KEYS,
        lambda runs: runs.throughput(
            "launcher", settings, jobs=2_000, mode="both", workers=2, task="true", progress=RichProgress, **kw
        ),
        check=check,
        publishing=publishing,
    )


class WorkerCounts(click.ParamType):
    """``1,2,4``: numbers of server processes, one scenario each."""

    name = "N[,N...]"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> tuple[int, ...]:
        if isinstance(value, tuple):
            return value
        try:
            counts = tuple(int(part) for part in str(value).split(","))
        except ValueError:
            counts = ()
        if not counts or min(counts) < 1:
            self.fail(f"{value!r}: expected a number of 1 or more, or a list such as 1,2,4", param, ctx)
        return counts


@bench.command()
@click.option(
    "--jobs",
    "-n",
    type=click.IntRange(1),
    default=10_000,
    show_default=True,
    help="jobs bulk created and cycled per trial",
)
@click.option(
    "--batch",
    type=click.IntRange(1, 10_000),
    default=1_000,
    show_default=True,
    help="jobs per acquire/report request in the cycle",
)
@click.option(
    "--table-jobs",
    type=click.IntRange(1),
    default=100_000,
    show_default=True,
    help="jobs in the table when pages are listed",
)
@click.option("--pages", type=click.IntRange(1), default=60, show_default=True, help="page requests timed")
@click.option(
    "--database",
    type=click.Choice(["sqlite", "postgresql", "both"]),
    default="sqlite",
    show_default=True,
    help="both: SQLite then PostgreSQL in one run, with the ratios",
)
@click.option(
    "--server-workers",
    type=WorkerCounts(),
    default="1",
    show_default=True,
    help="server processes (`tolu server up --workers`; more than 1 needs --database postgresql); "
    "a list such as 1,2,4 runs one scenario per number, each against the one-worker server's cycle rate",
)
@click.option(
    "--sessions",
    type=click.IntRange(1, 256),
    default=1,
    show_default=True,
    help="launcher-like sessions that acquire and complete jobs at once (threads of this process)",
)
@common_options
def api(**kw: Any) -> None:
    """Server hot paths: bulk create, acquire-and-complete cycles, filtered pages.

    The cycle is what launchers do: each of --sessions sessions acquires --batch
    jobs, reports them RUNNING, then RUN_DONE, until none is left. Every
    acquisition is counted: a job acquired twice or not JOB_FINISHED afterwards
    misses an aim of 0. The sessions and PostgreSQL run on this machine too: on
    a small machine they take the cores that more server workers would use
    (cycle_client_cpu_cores and cycle_database_cpu_cores say how many).

    \b
      tolu bench api --database both
      tolu bench api --database postgresql --server-workers 1,2,4 --sessions 8
    """
    settings, check, publishing = _settings(kw)
    _run(API_KEYS, lambda runs: runs.api(settings, **kw), check=check, publishing=publishing)


@bench.command()
@click.option(
    "--instances", type=click.IntRange(1), default=10_000, show_default=True, help="instances in the one run"
)
@click.option("--nodes", type=click.IntRange(1, 1000), default=5, show_default=True, help="nodes of the DAG")
@click.option(
    "--database",
    type=click.Choice(["sqlite", "postgresql", "both"]),
    default="sqlite",
    show_default=True,
    help="both: SQLite then PostgreSQL in one run",
)
@common_options
def dag(**kw: Any) -> None:
    """A DAG prototype run for many instances in one request (docs/dags.md).

    \b
      tolu bench dag                                  # 10,000 instances of a 5-node DAG
      tolu bench dag --database both --repeat 3
    """
    settings, check, publishing = _settings(kw)
    _run(DAG_KEYS, lambda runs: runs.dag(settings, **kw), check=check, publishing=publishing)


@bench.command()
@click.option(
    "--jobs", "-n", type=click.IntRange(1), default=20_000, show_default=True, help="short jobs in the run"
)
@click.option(
    "--kills",
    type=click.IntRange(0),
    default=3,
    show_default=True,
    help="faults per target, at random points",
)
@click.option(
    "--target",
    "targets",
    type=click.Choice(["launcher", "agent", "server", "postgresql"]),
    multiple=True,
    help="what to kill (repeatable) [default: all four]",
)
@click.option("--mode", type=click.Choice(["serial", "mpi"]), default="serial", show_default=True)
@click.option("--workers", "-w", type=click.IntRange(1), default=2, show_default=True, help="launcher slots")
@click.option(
    "--sleep", type=click.FloatRange(0), default=0.0, show_default=True, help="seconds each task sleeps"
)
@click.option("--seed", type=int, default=None, help="plans the same faults again [default: random, printed]")
@click.option(
    "--timeout",
    type=click.FloatRange(1),
    default=None,
    help="seconds the run may take [default: 600 + jobs/10]",
)
@_common_without_server
def chaos(**kw: Any) -> None:
    """Jobs run while the launcher, agent, server and PostgreSQL are killed and restarted.

    Starts its own PostgreSQL (initdb in a temporary directory, a free port), a
    server on it, a site whose app has a postprocess hook (the agent is on every
    job's path) and a launcher; then kills each target --kills times at random
    points (launcher: its whole process tree; PostgreSQL: pg_ctl stop -m
    immediate) and restarts it after a random few seconds. Figures: jobs lost,
    jobs run twice at once (Event history, and the tasks' own journal), final
    states; --check exits 1 unless none is lost and none ran twice at once.

    \b
      tolu bench chaos                              # 20,000 jobs, 3 kills of each
      tolu bench chaos --jobs 300 --kills 1 --seed 7 --check
    """
    settings, check, publishing = _settings(kw)
    kw["targets"] = kw["targets"] or ("launcher", "agent", "server", "postgresql")
    _run(
        CHAOS_KEYS,
        lambda runs: runs.chaos(settings, progress=RichProgress, say=lambda line: console.print(line), **kw),
        check=check,
        publishing=publishing,
    )
