"""What each figure means: unit, which direction is better, and its aim.

The aims are issue 11's "what done looks like", written where they are checked:

- run phase at >= 0.8 of the same-trial baseline (``ratio_run``);
- a process that handles every job (the launcher's coordinator, a launcher process that
  does everything, the server) spends <= 0.06 ms of CPU per job: at more, one process
  cannot feed the ~17,000 ``/bin/true`` a second that 16 cores start;
- the processes that start tasks spend <= 1.25 x the CPU per task of the process
  pool's workers (``ratio_cpu_start_vs_pool``);
- a task's RUNNING -> RUN_DONE p50 under its own run time + 10 ms;
- slot utilization >= 0.9 for tasks of 0.2 s or more (shorter ones are dominated by
  the process start that both tolu and the baseline pay);
- peak memory: launcher < 150 MiB, server < 200 MiB (the 100,000-job run's aims; a
  smaller run must stay under them too).
"""

from __future__ import annotations

from harness.bench.processes import ROLES
from harness.bench.schema import Better, FigureInfo
from harness.bench.tasks import Task
from runner.roles import Role

_LAT = ("p50", "p90", "p99", "max", "mean")

#: CPU per job that one process handling every job may spend (ms)
EVERY_JOB_CPU_MS = 0.06
#: CPU per task the processes that start tasks may spend, relative to the pool's workers
START_CPU_VS_POOL = 1.25
#: slot utilization aim, and the shortest task it applies to (seconds)
UTILIZATION = 0.9
UTILIZATION_MIN_TASK_S = 0.2
#: RUNNING -> RUN_DONE p50 may exceed the task's own run time by this much (ms)
RUN_DONE_SLACK_MS = 10.0
LAUNCHER_RSS_MIB = 150
SERVER_RSS_MIB = 200
#: roles whose processes each handle every job of their node (or of the server)
EVERY_JOB_ROLES = (Role.COORDINATOR.value, Role.LAUNCHER.value, Role.SERVER.value)
#: roles whose processes start tasks
STARTING_ROLES = (Role.STARTER.value, Role.LAUNCHER.value)

_ROLE_TEXT = {
    Role.SERVER.value: "the server (all its workers)",
    Role.COORDINATOR.value: "the launchers' coordinators (move every job of a node)",
    Role.STARTER.value: "the processes that only start and wait for tasks",
    Role.LAUNCHER.value: "launcher processes that both move every job and start tasks",
    Role.SUPERVISOR.value: "processes that only watch other tolu processes",
    Role.AGENT.value: "the site agent",
    "runtime": "the MPI runtime that starts tolu's ranks (mpiexec, its proxies)",
    "other": "tolu processes of no known role",
}


def _info(unit: str, better: Better, description: str, aim: str | None = None) -> FigureInfo:
    return FigureInfo(unit=unit, better=better, description=description, aim=aim)


def _latency(prefix: str, label: str, p50_aim: str | None = None) -> dict[str, FigureInfo]:
    return {
        f"{prefix}_{q}_ms": _info("ms", "lower", f"latency {label}, {q}", p50_aim if q == "p50" else None)
        for q in _LAT
    }


def cpu_figures() -> dict[str, FigureInfo]:
    """CPU per job of each role, their processes, and the starters against the pool."""
    out: dict[str, FigureInfo] = {}
    for role in ROLES:
        aim = f"<= {EVERY_JOB_CPU_MS:g}" if role in EVERY_JOB_ROLES else None
        out[f"cpu_ms_per_job_{role}"] = _info(
            "ms", "lower", f"run-phase CPU time per job of {_ROLE_TEXT[role]}", aim
        )
        out[f"processes_{role}"] = _info("processes", "none", f"processes seen: {_ROLE_TEXT[role]}")
    out["cpu_ms_per_job_tolu"] = _info(
        "ms", "lower", "run-phase CPU time per job of every tolu process together (tasks excluded)"
    )
    out["baseline_pool_cpu_ms_per_task"] = _info(
        "ms", "none", "CPU time per task of the process pool's workers (tasks excluded)"
    )
    out["ratio_cpu_start_vs_pool"] = _info(
        "ratio",
        "lower",
        "CPU per job of the processes that start tasks (starters, launchers) / the pool workers' per task",
        f"<= {START_CPU_VS_POOL:g}",
    )
    out["baseline_pool_workdirs_cpu_ms_per_task"] = _info(
        "ms",
        "none",
        "CPU time per task of the pool's workers when each task gets a directory and an output file",
    )
    out["ratio_cpu_start_vs_pool_workdirs"] = _info(
        "ratio",
        "lower",
        "CPU per job of the processes that start tasks / the pool workers' per task with a directory and "
        "an output file each (the file system's cost on both sides)",
    )
    out["server_cpu_share"] = _info(
        "fraction", "lower", "the server's part of all tolu CPU time in the run phase"
    )
    out["server_cpu_cores"] = _info("cores", "lower", "server CPU seconds / run-phase seconds")
    return out


def throughput_figures(task: Task, *, server_memory: bool = True) -> dict[str, FigureInfo]:
    """The figures of a throughput trial of ``task``, with the aims that apply to it."""
    run_done_aim = None if task.work_s is None else f"< {task.work_s * 1000 + RUN_DONE_SLACK_MS:g}"
    utilization_aim = (
        f">= {UTILIZATION:g}" if task.work_s is not None and task.work_s >= UTILIZATION_MIN_TASK_S else None
    )
    out = {
        "jobs_per_s": _info("jobs/s", "higher", "overall: first submission to last job final"),
        "run_jobs_per_s": _info("jobs/s", "higher", "run phase: first job RUNNING to last job final"),
        "create_jobs_per_s": _info("jobs/s", "higher", "bulk creation of the jobs"),
        "startup_s": _info("s", "lower", "launcher start to first job RUNNING"),
        "overall_s": _info("s", "lower", "first submission to last job final"),
        "ms_per_job_slot": _info("ms", "lower", "slot-time per job overall: slots x overall_s / jobs"),
        "overhead_ms_per_job": _info(
            "ms", "lower", "run-phase slot-time per job minus the process-pool baseline's"
        ),
        "slot_utilization": _info(
            "fraction",
            "higher",
            "mean busy slots / slots in the run phase (RUNNING to RUN_DONE times)",
            utilization_aim,
        ),
        "server_requests": _info("requests", "lower", "requests the server answered during the trial"),
        "server_requests_per_s": _info("requests/s", "none", "server requests / overall_s"),
        "requests_per_job": _info("requests", "lower", "server requests / jobs (bulk on the hot path)"),
        "server_peak_rss_mb": _info(
            "MiB",
            "lower",
            "peak resident memory of the server's processes",
            f"< {SERVER_RSS_MIB}" if server_memory else None,
        ),
        "server_peak_pss_mb": _info(
            "MiB", "lower", "peak proportional memory (shared pages split) of the server's processes"
        ),
        "launcher_peak_rss_mb": _info(
            "MiB",
            "lower",
            "peak resident memory of one launcher's processes (tasks excluded; the largest launcher)",
            f"< {LAUNCHER_RSS_MIB}",
        ),
        "launcher_peak_pss_mb": _info(
            "MiB", "lower", "peak proportional memory of one launcher's processes (tasks excluded)"
        ),
        "baseline_pool_jobs_per_s": _info("jobs/s", "none", "ProcessPoolExecutor(W) spawning the task"),
        "baseline_mpiexec_jobs_per_s": _info("jobs/s", "none", "W-way loop of bare `mpiexec -n 1 <task>`"),
        "ratio_run": _info("ratio", "higher", "run_jobs_per_s / the mode's baseline", ">= 0.8"),
        "ratio_overall": _info("ratio", "higher", "jobs_per_s / the mode's baseline"),
        "ratio_run_vs_pool": _info("ratio", "higher", "run_jobs_per_s / process-pool baseline"),
        "baseline_pool_workdirs_jobs_per_s": _info(
            "jobs/s",
            "none",
            "the process pool, each task in a directory of its own with its output in a file",
        ),
        "ratio_run_vs_pool_workdirs": _info(
            "ratio",
            "higher",
            "run_jobs_per_s / the pool whose tasks each get a directory and an output file (as jobs do)",
        ),
        "fs_workdir_us": _info(
            "us",
            "none",
            "CPU to make a directory with a file in it on the site's file system just before "
            "the trial, as every job gets: what the file system charged per job then "
            "(harness/bench/filesystem.py)",
        ),
        "jobs_failed": _info("jobs", "lower", "jobs that did not end JOB_FINISHED"),
        "run_errors": _info(
            "events", "lower", "RUN_ERROR/RUN_TIMEOUT events (each one a retry or a failure)"
        ),
    }
    out.update(_latency("queue", "creation to RUNNING"))
    out.update(_latency("run", "RUNNING to final"))
    out.update(_latency("run_done", "RUNNING to RUN_DONE (the task as the launcher saw it)", run_done_aim))
    out.update(_latency("dispatch", "from a free slot with a job waiting to that job RUNNING"))
    out.update(cpu_figures())
    return out


API: dict[str, FigureInfo] = {
    "create_jobs_per_s": _info("jobs/s", "higher", "bulk create (requests of up to 10,000 jobs)", ">= 20000"),
    "cycle_jobs_per_s": _info(
        "jobs/s",
        "higher",
        "acquire + a launcher's report (RUN_DONE with its start) in launcher-sized batches",
        ">= 20000",
    ),
    "acquire_ms_per_batch": _info("ms", "lower", "median acquire request per batch"),
    "update_ms_per_batch": _info("ms", "lower", "median report request per batch (one outcome per job)"),
    "cycle_server_cpu_ms_per_job": _info(
        "ms",
        "lower",
        "server CPU time per job in the acquire-and-complete cycle (every server process: the "
        "supervisor and all its workers)",
        f"<= {EVERY_JOB_CPU_MS:g}",
    ),
    "cycle_server_cpu_cores": _info(
        "cores", "none", "server CPU seconds (every process) / cycle seconds: the cores the server kept busy"
    ),
    "cycle_database_cpu_ms_per_job": _info(
        "ms",
        "lower",
        "CPU time per job of the PostgreSQL backends connected to the bench's database in the cycle "
        "(the server's connections, autovacuum; PostgreSQL on this machine only, its shared WAL writer "
        "and checkpointer left out)",
    ),
    "cycle_database_cpu_cores": _info(
        "cores", "none", "those backends' CPU seconds / cycle seconds: the cores PostgreSQL kept busy"
    ),
    "cycle_client_cpu_cores": _info(
        "cores",
        "none",
        "the sessions' own CPU seconds / cycle seconds (near 1 would make the bench client, one Python "
        "process, the limit)",
    ),
    "busiest_worker_cpu_share": _info(
        "fraction",
        "none",
        "the busiest server worker's part of the workers' CPU in the cycle: 1/N when the sessions' "
        "connections spread evenly over N workers, 1 when one worker got them all",
    ),
    "server_processes": _info("processes", "none", "server processes in the cycle (supervisor, workers)"),
    "jobs_acquired_twice": _info(
        "jobs", "lower", "acquisitions of a job that a session had acquired already (any session)", "<= 0"
    ),
    "jobs_not_cycled": _info(
        "jobs", "lower", "jobs of the cycle that the server does not show JOB_FINISHED after it", "<= 0"
    ),
    "ratio_cycle_vs_one_worker": _info(
        "ratio",
        "higher",
        "cycle_jobs_per_s / the one-worker server's on the same database in the same run (grows with "
        "workers while free cores remain)",
    ),
    "page_p50_ms": _info("ms", "lower", "filtered 50-row page out of the table, p50", "< 50"),
    "page_p90_ms": _info("ms", "lower", "filtered 50-row page, p90"),
    "page_max_ms": _info("ms", "lower", "filtered 50-row page, slowest"),
    "table_jobs": _info("jobs", "none", "jobs in the table when pages were listed"),
    "server_peak_rss_mb": _info(
        "MiB",
        "lower",
        "peak resident memory of the server's processes together (aim: with one worker)",
        f"< {SERVER_RSS_MIB}",
    ),
    "server_process_peak_rss_mb": _info(
        "MiB",
        "lower",
        "peak resident memory of the largest server process (aim: with several workers, each one)",
        f"< {SERVER_RSS_MIB}",
    ),
    "ratio_create_vs_sqlite": _info("ratio", "higher", "this database's create rate / SQLite's", ">= 0.5"),
    "ratio_cycle_vs_sqlite": _info("ratio", "higher", "this database's cycle rate / SQLite's", ">= 0.5"),
}

DAG: dict[str, FigureInfo] = {
    "run_jobs_per_s": _info("jobs/s", "higher", "jobs of a DAG run created per second (one request)"),
    "run_request_s": _info("s", "lower", "the one request that creates every instance of the run"),
    "run_server_cpu_ms_per_job": _info("ms", "lower", "server CPU time per job created (all its workers)"),
    "status_ms": _info("ms", "lower", "the run's status (jobs per state, instances per outcome)"),
    "server_peak_rss_mb": _info(
        "MiB", "lower", "peak resident memory of the server's processes", f"< {SERVER_RSS_MIB}"
    ),
}

#: figures that --compare/--fail-on check (ratios measured in one run travel across machines).
COMPARED_PREFIX = "ratio_"
