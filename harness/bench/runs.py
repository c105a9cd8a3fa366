"""The runs behind ``tolu bench throughput|launcher|api``: from a command's options to its files.

Each function opens the stack (server, database, site) in a work directory, builds the
command's scenarios, runs them through the engine and returns the outcome; the CLI
(harness/bench/cli.py) only parses options and prints. Errors a user can cause or meet
(a bad ``--task``, a server that would not start, stuck jobs, a missing extra) are the
exception types in :data:`USER_ERRORS`, each with a message that says what and where.
"""

from __future__ import annotations

import contextlib
import secrets
import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from harness.bench import engine, machine, postgres
from harness.bench.api import ApiScenario, scenario_name
from harness.bench.baselines import BaselineError
from harness.bench.chaos import TARGETS, ChaosError, ChaosScenario
from harness.bench.dag import DagScenario
from harness.bench.history_gate import HistoryError, HistoryGate
from harness.bench.quiet import QuietWait
from harness.bench.stack import StackError, check_server_workers, open_stack
from harness.bench.tasks import Task, TaskError, parse
from harness.bench.throughput import BenchError, NoProgress, Progress, ThroughputScenario
from runner.client.errors import ToluError
from runner.extras import MissingExtra, require_extra

#: what a run raises for a person to read (anything else is a bug: traceback).
USER_ERRORS: tuple[type[BaseException], ...] = (
    BaselineError,
    ChaosError,
    HistoryError,
    postgres.PostgresError,
    StackError,
    TaskError,
    BenchError,
    ToluError,
    MissingExtra,
)

#: jobs per mode when ``jobs`` is not given: the README's first command stays under two
#: minutes on a 2-core machine (one mpiexec per job makes MPI mode the slower one).
DEFAULT_JOBS = {"serial": 2_000, "mpi": 500}


@dataclass(frozen=True)
class RunSettings:
    """What every ``tolu bench`` command takes (see ``tolu bench throughput --help``)."""

    #: the command line as given, recorded in bench.json
    argv: Sequence[str]
    #: process, container, or a URL (``tolu bench chaos`` always starts its own)
    server: str = "process"
    repeat: int = 1
    out_dir: Path | None = None
    compare_path: Path | None = None
    fail_on: float | None = None
    #: with fail_on: the ratios that can fail the run (--gate-on); empty: every ratio
    gate_on: tuple[str, ...] = ()
    keep_work: bool = False
    #: compare with the published history (--against-history) instead of compare_path
    history: HistoryGate | None = None
    #: --quiet-wait: seconds to wait before the first trial, then for the load to fall
    #: under ``quiet_load`` (harness/bench/quiet.py); 0: start at once
    quiet_wait: float = 0.0
    quiet_load: float = 1.0


def throughput(
    command: str,
    settings: RunSettings,
    *,
    jobs: int | None = None,
    mode: str = "both",
    workers: int = 2,
    launchers: int = 1,
    nodes: int = 1,
    database: str = "sqlite",
    task: str = "true",
    baseline_jobs: int | None = None,
    timeout: float | None = None,
    progress: Callable[[], Progress] = NoProgress,
) -> engine.RunOutcome:
    """``jobs`` jobs of ``task`` per mode (serial, mpi or both) through a real server and launcher(s).

    ``command`` names the run (``throughput``, ``launcher``); ``launchers`` launchers run
    at once, each on ``nodes`` nodes of ``workers`` slots (more than one node: made-up
    hosts whose ranks Hydra starts here); ``progress`` is made once per scenario to show
    how far a trial is.
    """
    _check_extras(settings)
    the_task = parse(task)
    out_dir = settings.out_dir or engine.default_out_dir(command)
    modes = ["serial", "mpi"] if mode == "both" else [mode]
    per_mode = {m: jobs or DEFAULT_JOBS[m] for m in modes}
    params = {
        "jobs": per_mode,
        "mode": mode,
        "workers": workers,
        "launchers": launchers,
        "nodes": nodes,
        "server": settings.server,
        "database": database,
        "task": task,
        "repeat": settings.repeat,
    }
    with (
        _work_dir(out_dir, settings.keep_work) as work,
        open_stack(
            work / command, server=settings.server, database=database, slots=workers, nodes=nodes
        ) as stack,
    ):
        info = machine.collect(database=database, database_version=stack.database.version, work_dir=work)
        runners = [
            ThroughputScenario(
                stack=stack,
                mode=m,
                jobs=per_mode[m],
                workers=workers,
                launchers=launchers,
                nodes=nodes,
                task=the_task,
                baseline_jobs=baseline_jobs or min(per_mode[m], 5_000),
                timeout_s=timeout or default_timeout(per_mode[m], the_task, workers * launchers * nodes),
                progress=progress(),
            )
            for m in modes
        ]
        return engine.run(_run_options(command, settings, params, out_dir), runners, info)


def api(
    settings: RunSettings,
    *,
    jobs: int = 10_000,
    batch: int = 1_000,
    table_jobs: int = 100_000,
    pages: int = 60,
    database: str = "sqlite",
    server_workers: Sequence[int] = (1,),
    sessions: int = 1,
) -> engine.RunOutcome:
    """The server's hot paths on ``database`` (sqlite, postgresql, or both in one run).

    One scenario per database and per number of server processes in ``server_workers``
    (more than one: PostgreSQL only), in that order, each its own server and database;
    ``sessions`` sessions cycle the jobs at once. A one-worker scenario is the reference
    of the others on its database (``ratio_cycle_vs_one_worker``), the SQLite one of
    PostgreSQL's (``ratio_*_vs_sqlite``).
    """
    counts = sorted(set(server_workers)) or [1]
    kinds = ["sqlite", "postgresql"] if database == "both" else [database]
    check_server_workers(counts, server=settings.server, databases=kinds)
    _check_extras(settings)
    out_dir = settings.out_dir or engine.default_out_dir("api")
    params = {
        "jobs": jobs,
        "batch": batch,
        "table_jobs": table_jobs,
        "pages": pages,
        "database": database,
        "server_workers": counts,
        "sessions": sessions,
        "server": settings.server,
        "repeat": settings.repeat,
    }
    with _work_dir(out_dir, settings.keep_work) as work, contextlib.ExitStack() as stacks:
        runners: list[ApiScenario] = []
        for kind in kinds:
            for n in counts:
                stack = stacks.enter_context(
                    open_stack(
                        work / scenario_name(kind, n),
                        server=settings.server,
                        database=kind,
                        server_workers=n,
                    )
                )
                sqlite = [r for r in runners if r.stack.database.kind == "sqlite"]
                one = [r for r in runners if r.stack.database.kind == kind and r.server_workers == 1]
                runners.append(
                    ApiScenario(
                        stack,
                        jobs=jobs,
                        batch=batch,
                        table_jobs=table_jobs,
                        pages=pages,
                        sessions=sessions,
                        reference=sqlite[0] if sqlite and kind != "sqlite" else None,
                        one_worker=one[0] if one and n > 1 else None,
                    )
                )
        versions = ", ".join(
            dict.fromkeys(f"{r.stack.database.kind} {r.stack.database.version}" for r in runners)
        )
        info = machine.collect(database=database, database_version=versions)
        return engine.run(_run_options("api", settings, params, out_dir), runners, info)


def dag(
    settings: RunSettings, *, instances: int = 10_000, nodes: int = 5, database: str = "sqlite"
) -> engine.RunOutcome:
    """A ``nodes``-node DAG run for ``instances`` instances in one request, on ``database``."""
    _check_extras(settings)
    out_dir = settings.out_dir or engine.default_out_dir("dag")
    kinds = ["sqlite", "postgresql"] if database == "both" else [database]
    params = {
        "instances": instances,
        "nodes": nodes,
        "database": database,
        "server": settings.server,
        "repeat": settings.repeat,
    }
    with _work_dir(out_dir, settings.keep_work) as work, contextlib.ExitStack() as stacks:
        runners = [
            DagScenario(
                stacks.enter_context(open_stack(work / f"dag-{kind}", server=settings.server, database=kind)),
                instances=instances,
                nodes=nodes,
            )
            for kind in kinds
        ]
        versions = ", ".join(f"{r.stack.database.kind} {r.stack.database.version}" for r in runners)
        info = machine.collect(database=database, database_version=versions)
        return engine.run(_run_options("dag", settings, params, out_dir), runners, info)


def chaos(
    settings: RunSettings,
    *,
    jobs: int = 20_000,
    kills: int = 3,
    mode: str = "serial",
    workers: int = 2,
    sleep: float = 0.0,
    seed: int | None = None,
    targets: Sequence[str] = TARGETS,
    timeout: float | None = None,
    progress: Callable[[], Progress] = NoProgress,
    say: Callable[[str], None] = lambda line: None,
) -> engine.RunOutcome:
    """``jobs`` short jobs while launcher, agent, server and PostgreSQL are killed ``kills`` times each."""
    the_seed = seed if seed is not None else secrets.randbelow(10**6)
    out_dir = settings.out_dir or engine.default_out_dir("chaos")
    params = {
        "jobs": jobs,
        "kills": kills,
        "mode": mode,
        "workers": workers,
        "sleep": sleep,
        "seed": the_seed,
        "targets": list(targets),
        "repeat": settings.repeat,
    }
    with _work_dir(out_dir, settings.keep_work) as work:
        scenario = ChaosScenario(
            work_dir=work,
            jobs=jobs,
            kills=kills,
            mode=mode,
            workers=workers,
            sleep_s=sleep,
            seed=the_seed,
            targets=tuple(targets),
            timeout_s=timeout or 600 + jobs / 10,
            progress=progress(),
            say=say,
        )
        info = machine.collect(database="postgresql", database_version=postgres.version(), work_dir=work)
        notes = [f"seed {the_seed}: `--seed {the_seed}` plans the same faults at the same points of the run"]
        opts = _run_options("chaos", settings, params, out_dir)
        opts.notes.extend(notes)
        return engine.run(opts, [scenario], info)


def default_timeout(jobs: int, task: Task, slots: int) -> float:
    """Seconds a trial may take: 2 minutes, 50 ms per job, and twice the tasks' own work per slot."""
    return 120 + jobs / 20 + 2 * jobs * (task.work_s or 0.0) / slots


def _check_extras(settings: RunSettings) -> None:
    # before anything starts: the container server needs the docker SDK
    if settings.server == "container":
        require_extra("container", "tolu bench --server container")


def _run_options(
    command: str, settings: RunSettings, params: dict[str, object], out_dir: Path
) -> engine.RunOptions:
    return engine.RunOptions(
        command=command,
        argv=list(settings.argv),
        parameters=params,
        out_dir=out_dir,
        repeat=settings.repeat,
        compare_path=settings.compare_path,
        fail_on=settings.fail_on,
        gate_on=settings.gate_on,
        history=settings.history,
        quiet_wait=QuietWait(settings.quiet_wait, settings.quiet_load) if settings.quiet_wait > 0 else None,
    )


@contextlib.contextmanager
def _work_dir(out_dir: Path, keep: bool) -> Iterator[Path]:
    if keep:
        path = out_dir / "work"
        path.mkdir(parents=True, exist_ok=True)
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="tolu-bench-") as tmp:
        try:
            yield Path(tmp)
        finally:
            _save_logs(Path(tmp), out_dir / "logs")


def _save_logs(work: Path, dest: Path) -> None:
    """Server and launcher logs (and a chaos run's task journal) are artifacts; job workdirs are not."""
    for log in [*work.glob("*/server/server.log"), *work.glob("*/site/log/*"), *work.glob("*/journal.txt")]:
        if log.is_file():
            target = dest / log.relative_to(work)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(log, target)
