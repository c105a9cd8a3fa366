"""What each figure means: unit, which direction is better, and the issue's aim."""

from __future__ import annotations

from harness.bench.schema import Better, FigureInfo

_LAT = ("p50", "p90", "p99", "max", "mean")


def _info(unit: str, better: Better, description: str, aim: str | None = None) -> FigureInfo:
    return FigureInfo(unit=unit, better=better, description=description, aim=aim)


THROUGHPUT: dict[str, FigureInfo] = {
    "jobs_per_s": _info("jobs/s", "higher", "overall: first submission to last job final"),
    "run_jobs_per_s": _info("jobs/s", "higher", "run phase: first job RUNNING to last job final"),
    "create_jobs_per_s": _info("jobs/s", "higher", "bulk creation of the jobs"),
    "startup_s": _info("s", "lower", "launcher start to first job RUNNING"),
    "overall_s": _info("s", "lower", "first submission to last job final"),
    "ms_per_job_slot": _info("ms", "lower", "slot-time per job overall: workers x overall_s / jobs"),
    "overhead_ms_per_job": _info(
        "ms", "lower", "run-phase slot-time per job minus the process-pool baseline's"
    ),
    "slot_utilization": _info(
        "fraction", "higher", "mean busy slots / slots in the run phase (RUNNING to RUN_DONE times)"
    ),
    "server_requests": _info("requests", "lower", "requests the server answered during the trial"),
    "server_requests_per_s": _info("requests/s", "none", "server requests / overall_s"),
    "requests_per_job": _info("requests", "lower", "server requests / jobs (bulk on the hot path)"),
    "server_peak_rss_mb": _info("MiB", "lower", "peak resident memory of the server process tree"),
    "launcher_peak_rss_mb": _info(
        "MiB", "lower", "peak resident memory of the launcher process tree (tasks excluded)"
    ),
    "baseline_pool_jobs_per_s": _info("jobs/s", "none", "ProcessPoolExecutor(W) spawning the task"),
    "baseline_mpiexec_jobs_per_s": _info("jobs/s", "none", "W-way loop of bare `mpiexec -n 1 <task>`"),
    "ratio_run": _info("ratio", "higher", "run_jobs_per_s / the mode's baseline", ">= 0.8"),
    "ratio_overall": _info("ratio", "higher", "jobs_per_s / the mode's baseline"),
    "ratio_run_vs_pool": _info("ratio", "higher", "run_jobs_per_s / process-pool baseline"),
    "jobs_failed": _info("jobs", "lower", "jobs that did not end JOB_FINISHED"),
    "run_errors": _info("events", "lower", "RUN_ERROR/RUN_TIMEOUT events (each one a retry or a failure)"),
}
for _name, _label in (("queue", "creation to RUNNING"), ("run", "RUNNING to final")):
    for _q in _LAT:
        THROUGHPUT[f"{_name}_{_q}_ms"] = _info("ms", "lower", f"latency {_label}, {_q}")


API: dict[str, FigureInfo] = {
    "create_jobs_per_s": _info("jobs/s", "higher", "bulk create (requests of up to 10,000 jobs)", ">= 20000"),
    "cycle_jobs_per_s": _info(
        "jobs/s", "higher", "acquire + RUNNING + RUN_DONE in launcher-sized batches", ">= 10000"
    ),
    "acquire_ms_per_batch": _info("ms", "lower", "median acquire request per batch"),
    "update_ms_per_batch": _info("ms", "lower", "median bulk state update request per batch"),
    "page_p50_ms": _info("ms", "lower", "filtered 50-row page out of the table, p50", "< 50"),
    "page_p90_ms": _info("ms", "lower", "filtered 50-row page, p90"),
    "page_max_ms": _info("ms", "lower", "filtered 50-row page, slowest"),
    "table_jobs": _info("jobs", "none", "jobs in the table when pages were listed"),
    "server_peak_rss_mb": _info("MiB", "lower", "peak resident memory of the server process tree"),
    "ratio_create_vs_sqlite": _info("ratio", "higher", "this database's create rate / SQLite's", ">= 0.5"),
    "ratio_cycle_vs_sqlite": _info("ratio", "higher", "this database's cycle rate / SQLite's", ">= 0.5"),
}

#: figures that --compare/--fail-on check (ratios measured in one run travel across machines).
COMPARED_PREFIX = "ratio_"
