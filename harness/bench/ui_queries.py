"""What the web interface asks the server, timed on a large PostgreSQL database.

``python -m harness.bench.ui_queries [--jobs 1000000] [--events 1000000] [--repeat 21]``

Two users share one scratch database (dropped afterwards):

- *tables*: ``--jobs`` jobs (70% finished, 10% failed, 19% waiting, 1% running; two
  tags each; three apps), for the jobs
  page (``GET /jobs`` with its total count, as the Jobs view asks: 25 rows, newest
  first; and filtered by state, tag, app and creation date; page 100; sorted by
  update) and the site cards (``GET /stats/sites``);
- *history*: ``--events`` Events (8 per job: created ... finished, over 24 hours, in
  allocations of 8 nodes), for ``GET /stats/history`` (the History view: the whole
  span, a 6-hour window, a tag filter) and one allocation's utilization.

The rows are written with ``INSERT ... SELECT generate_series`` (filling through the
API would take longer than what is measured, and only reads are timed here), then
``VACUUM ANALYZE`` as autovacuum would. Each request goes over HTTP to a real server
process; the figures are p50 / p95 / max of ``--repeat`` requests after one warm-up,
with the load average of the machine before and after. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import psutil
import psycopg
import requests

from harness.databases import scratch_database
from harness.probes import libpq_url
from runner.client import Client
from runner.server.process import ServerProcess

EVENTS_PER_JOB = 8
SPAN_HOURS = 24
NODES_PER_ALLOCATION = 8


@dataclass
class Ids:
    user: int
    site: int
    apps: list[int]
    batch_job: int | None = None


def _setup(server_url: str, name: str, apps: int) -> tuple[Client, Ids]:
    password = secrets.token_urlsafe(12)
    Client.register(server_url, name, password)
    client = Client.login(server_url, name, password)
    site = client.sites.create(name=f"{name}-site", path="/tmp/bench", hostname="bench")
    made = [
        client.apps.create(site_id=site.id, name=f"app{i}", command_template="true", parameters={})
        for i in range(apps)
    ]
    return client, Ids(_user_id(client), site.id, [a.id for a in made])


def _user_id(client: Client) -> int:
    response = requests.get(
        client.url + "/users/me", headers={"Authorization": f"Bearer {client.token}"}, timeout=60
    )
    response.raise_for_status()
    return int(response.json()["id"])


FILL_TABLES = """
INSERT INTO jobs (owner_id, site_id, app_id, state, parents, parameters, serialized_args, tags, environment,
    workdir, num_nodes, ranks_per_node, threads_per_rank, gpus_per_rank, node_packing_count, wall_time_min,
    return_code, retry_count, retry_limit, data, batch_job_id, session_id, has_children, n_stage_in,
    n_stage_out, created_at, updated_at)
SELECT %(owner)s, %(site)s, (%(apps)s::int[])[1 + g %% 3],
    CASE WHEN g %% 100 < 70 THEN 'JOB_FINISHED' WHEN g %% 100 < 80 THEN 'FAILED'
         WHEN g %% 100 < 99 THEN 'PREPROCESSED' ELSE 'RUNNING' END,
    '[]', json_build_object('i', g), NULL,
    json_build_object('run', 'r' || (g %% 100), 'kind', CASE WHEN g %% 2 = 0 THEN 'a' ELSE 'b' END),
    '{}', 'app/' || g, 1, 1, 1, 0, 1, 0, NULL, 0, 3, '{}', NULL, NULL, false, 0, 0,
    %(t0)s + g * interval '50 milliseconds', %(t0)s + g * interval '50 milliseconds' + interval '5 minutes'
FROM generate_series(1, %(n)s) g;
INSERT INTO job_tags (job_id, key, value)
SELECT id, 'run', tags->>'run' FROM jobs WHERE owner_id = %(owner)s
UNION ALL SELECT id, 'kind', tags->>'kind' FROM jobs WHERE owner_id = %(owner)s;
"""

FILL_HISTORY = """
INSERT INTO batch_jobs (owner_id, site_id, scheduler_id, project, queue, num_nodes, wall_time_min, job_mode,
    filter_tags, options, state, status_info, start_time, end_time, created_at, updated_at)
SELECT %(owner)s, %(site)s, 'b' || b, '', '', %(nodes)s, 60, 'mpi', '{}', '{}',
    CASE WHEN b = %(allocs)s THEN 'running' ELSE 'finished' END, '{}',
    %(t0)s + (b - 1) * %(alloc_len)s, CASE WHEN b = %(allocs)s THEN NULL ELSE %(t0)s + b * %(alloc_len)s END,
    %(t0)s + (b - 1) * %(alloc_len)s, %(t0)s + b * %(alloc_len)s
FROM generate_series(1, %(allocs)s) b;
INSERT INTO jobs (owner_id, site_id, app_id, state, parents, parameters, serialized_args, tags, environment,
    workdir, num_nodes, ranks_per_node, threads_per_rank, gpus_per_rank, node_packing_count, wall_time_min,
    return_code, retry_count, retry_limit, data, batch_job_id, session_id, has_children, n_stage_in,
    n_stage_out, created_at, updated_at)
SELECT %(owner)s, %(site)s, %(app)s, CASE WHEN g %% 50 = 0 THEN 'FAILED' ELSE 'JOB_FINISHED' END, '[]', '{}',
    NULL, json_build_object('run', 'h' || (g %% 10)), '{}', 'app/' || g, 1 + (g %% 2), 1, 1, 0, 1, 0,
    0, 0, 0, '{}',
    (SELECT min(id) FROM batch_jobs WHERE owner_id = %(owner)s)
        + floor((g - 1)::float / %(n)s * %(allocs)s)::int,
    NULL, false, 0, 0,
    %(t0)s + (g - 1) * (%(span)s / %(n)s), %(t0)s + (g - 1) * (%(span)s / %(n)s) + interval '4 minutes'
FROM generate_series(1, %(n)s) g;
INSERT INTO job_tags (job_id, key, value) SELECT id, 'run', tags->>'run' FROM jobs WHERE owner_id = %(owner)s;
INSERT INTO events (owner_id, site_id, job_id, from_state, to_state, timestamp, data)
SELECT j.owner_id, j.site_id, j.id, s.from_state, s.to_state, j.created_at + s.after, '{}'
FROM jobs j CROSS JOIN LATERAL (VALUES
    (NULL, 'CREATED', interval '0'),
    ('CREATED', 'STAGED_IN', interval '0'),
    ('STAGED_IN', 'PREPROCESSED', interval '0'),
    ('PREPROCESSED', 'RUNNING', interval '30 seconds' + (j.id %% 7) * interval '10 seconds'),
    ('RUNNING', CASE WHEN j.state = 'FAILED' THEN 'RUN_ERROR' ELSE 'RUN_DONE' END,
        interval '150 seconds' + (j.id %% 11) * interval '5 seconds'),
    (CASE WHEN j.state = 'FAILED' THEN 'RUN_ERROR' ELSE 'RUN_DONE' END,
        CASE WHEN j.state = 'FAILED' THEN 'FAILED' ELSE 'POSTPROCESSED' END, interval '220 seconds'),
    ('POSTPROCESSED', 'STAGED_OUT', interval '221 seconds'),
    ('STAGED_OUT', 'JOB_FINISHED', interval '222 seconds')
) AS s(from_state, to_state, after)
WHERE j.owner_id = %(owner)s AND (j.state <> 'FAILED' OR s.from_state IS DISTINCT FROM 'POSTPROCESSED')
  AND (j.state <> 'FAILED' OR s.from_state IS DISTINCT FROM 'STAGED_OUT');
"""


def _script(conn: psycopg.Connection[Any], sql: str, params: dict[str, Any]) -> None:
    for statement in sql.split(";\n"):
        if statement.strip():
            conn.execute(statement, params)


def fill(url: str, tables: Ids, history: Ids, jobs: int, events: int, t0: datetime) -> dict[str, int]:
    # 8 Events per finished job, 6 per failed one (one in 50)
    history_jobs = -(-events * 50 // (49 * EVENTS_PER_JOB + 6))
    allocs = max(1, SPAN_HOURS * 2)  # one allocation every 30 minutes
    with psycopg.connect(libpq_url(url), autocommit=True) as conn:
        _script(
            conn,
            FILL_TABLES,
            {"owner": tables.user, "site": tables.site, "apps": tables.apps, "t0": t0, "n": jobs},
        )
        _script(
            conn,
            FILL_HISTORY,
            {
                "owner": history.user,
                "site": history.site,
                "app": history.apps[0],
                "t0": t0,
                "n": history_jobs,
                "span": timedelta(hours=SPAN_HOURS),
                "allocs": allocs,
                "alloc_len": timedelta(hours=SPAN_HOURS) / allocs,
                "nodes": NODES_PER_ALLOCATION,
            },
        )
        conn.execute("VACUUM ANALYZE")
        counts = {
            name: int(conn.execute(f"SELECT count(*) FROM {name}").fetchone()[0])  # type: ignore[index]
            for name in ("jobs", "events", "job_tags", "batch_jobs")
        }
        row = conn.execute(
            "SELECT max(id) FROM batch_jobs WHERE owner_id = %s AND state = 'finished'", (history.user,)
        ).fetchone()
        history.batch_job = int(row[0]) if row and row[0] is not None else None
    return counts


@dataclass
class Timing:
    name: str
    p50: float
    p95: float
    worst: float
    detail: str
    #: CPU milliseconds per request (server process + its database backends), p50
    cpu: float | None = None


class CpuMeter:
    """CPU seconds used so far by the server process and the database's backends.

    Parallel query workers exit with their CPU time, so this is read with parallel
    query off (one backend per request): CPU time per request does not depend on how
    busy the machine is, unlike wall time.
    """

    def __init__(self, server_pid: int, url: str) -> None:
        self.server = psutil.Process(server_pid)
        self.conn = psycopg.connect(libpq_url(url), autocommit=True)

    def __call__(self) -> float:
        pids = [
            r[0]
            for r in self.conn.execute(
                "SELECT pid FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        ]
        total = sum(self.server.cpu_times()[:2])
        for pid in pids:
            with contextlib.suppress(psutil.Error):
                total += sum(psutil.Process(pid).cpu_times()[:2])
        return total


def timed(
    name: str,
    request: Callable[[], requests.Response],
    repeat: int,
    *,
    detail: str,
    cpu: CpuMeter | None = None,
) -> Timing:
    request().raise_for_status()  # warm-up (plans, caches, pooled connections)
    samples, used = [], []
    for _ in range(repeat):
        c = cpu() if cpu else 0.0
        t = time.perf_counter()
        response = request()
        samples.append((time.perf_counter() - t) * 1000)
        if cpu:
            used.append((cpu() - c) * 1000)
        response.raise_for_status()
    samples.sort()
    p95 = samples[min(len(samples) - 1, round(0.95 * (len(samples) - 1)))]
    return Timing(
        name, statistics.median(samples), p95, samples[-1], detail, statistics.median(used) if cpu else None
    )


def measure(
    server_url: str,
    tables: Client,
    history: Client,
    ids: Ids,
    hist_ids: Ids,
    repeat: int,
    cpu: CpuMeter | None,
) -> list[Timing]:
    def get(client: Client, path: str, **params: Any) -> Callable[[], requests.Response]:
        headers = {"Authorization": f"Bearer {client.token}"}
        return lambda: requests.get(server_url + path, params=params, headers=headers, timeout=300)

    page = {"limit": 25, "ordering": "-id"}
    now = datetime.now(UTC)
    out = [
        timed(
            "jobs page",
            get(tables, "/jobs", **page),
            repeat,
            cpu=cpu,
            detail="25 rows, newest first, with the total count",
        ),
        timed(
            "jobs page, state filter",
            get(tables, "/jobs", state="FAILED", **page),
            repeat,
            cpu=cpu,
            detail="10% of the jobs",
        ),
        timed(
            "jobs page, tag filter",
            get(tables, "/jobs", tags="run:r7", **page),
            repeat,
            cpu=cpu,
            detail="1% of the jobs",
        ),
        timed(
            "jobs page, app + state",
            get(tables, "/jobs", app_id=ids.apps[1], state="JOB_FINISHED", **page),
            repeat,
            cpu=cpu,
            detail="app (1/3) and state (70%)",
        ),
        timed(
            "jobs page, created after",
            get(tables, "/jobs", created_after=(now - timedelta(hours=3)).isoformat(), **page),
            repeat,
            cpu=cpu,
            detail="a date range",
        ),
        timed(
            "jobs page 100",
            get(tables, "/jobs", limit=25, offset=2475, ordering="-id"),
            repeat,
            cpu=cpu,
            detail="offset 2,475",
        ),
        timed(
            "jobs page, by update",
            get(tables, "/jobs", limit=25, ordering="-updated_at"),
            repeat,
            cpu=cpu,
            detail="sorted by updated_at",
        ),
        timed(
            "site cards",
            get(tables, "/stats/sites"),
            repeat,
            cpu=cpu,
            detail="jobs by state, allocations, nodes",
        ),
        timed(
            "history, whole span",
            get(history, "/stats/history", buckets=150),
            repeat,
            cpu=cpu,
            detail="all Events, 150 points",
        ),
        timed(
            "history, 6 h window",
            get(
                history,
                "/stats/history",
                buckets=150,
                after=(now - timedelta(hours=12)).isoformat(),
                before=(now - timedelta(hours=6)).isoformat(),
            ),
            repeat,
            cpu=cpu,
            detail="after/before",
        ),
        timed(
            "history, tag filter",
            get(history, "/stats/history", buckets=150, tags="run:h3"),
            repeat,
            cpu=cpu,
            detail="10% of the jobs",
        ),
    ]
    if hist_ids.batch_job is not None:
        out.append(
            timed(
                "utilization of one allocation",
                get(history, "/stats/history", batch_job_id=hist_ids.batch_job, buckets=200),
                repeat,
                cpu=cpu,
                detail="its jobs' Events",
            )
        )
    return out


def first_history(server_url: str, client: Client) -> float:
    """Milliseconds of the first ``GET /stats/history``: it rolls every Event into the
    server's history cells (services/history_rollup.py); the timed requests read them."""
    started = time.perf_counter()
    response = requests.get(
        server_url + "/stats/history",
        params={"buckets": 150},
        headers={"Authorization": f"Bearer {client.token}"},
        timeout=600,
    )
    response.raise_for_status()
    return (time.perf_counter() - started) * 1000


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m harness.bench.ui_queries", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--jobs", type=int, default=1_000_000, help="jobs of the tables user")
    parser.add_argument("--events", type=int, default=1_000_000, help="Events of the history user")
    parser.add_argument("--repeat", type=int, default=11, help="timed requests per query")
    args = parser.parse_args(argv)
    load_before = os.getloadavg()
    with scratch_database("tolu_bench_ui") as url, tempfile.TemporaryDirectory() as tmp:
        server = ServerProcess(tmp, database_url=url)
        server.start(timeout=120)
        try:
            tables_client, tables = _setup(server.url, "tables", 3)
            history_client, history = _setup(server.url, "history", 1)
            t0 = datetime.now(UTC).replace(tzinfo=None) - timedelta(hours=SPAN_HOURS)
            started = time.perf_counter()
            counts = fill(url, tables, history, args.jobs, args.events, t0)
            print(f"filled in {time.perf_counter() - started:.0f} s: {counts}", file=sys.stderr)
            first_ms = first_history(server.url, history_client)
            wall = measure(server.url, tables_client, history_client, tables, history, args.repeat, None)
        finally:
            server.stop()
        # the CPU pass: parallel query off, a fresh server (fresh pooled connections)
        with psycopg.connect(libpq_url(url), autocommit=True) as conn:
            version = conn.info.server_version
            name = conn.info.dbname
            conn.execute(f'ALTER DATABASE "{name}" SET max_parallel_workers_per_gather = 0')
        server = ServerProcess(tmp, database_url=url)
        server.start(timeout=120)
        try:
            meter = CpuMeter(server.pid or 0, url)
            serial = measure(server.url, tables_client, history_client, tables, history, args.repeat, meter)
            meter.conn.close()
        finally:
            server.stop()
    load_after = os.getloadavg()
    print(
        f"PostgreSQL {version // 10000}.{version % 10000}, {os.cpu_count()} cores, {platform.machine()}; "
        f"{counts['jobs']:,} jobs, {counts['events']:,} Events; load average {load_before[0]:.1f} before, "
        f"{load_after[0]:.1f} after; {args.repeat} requests each over HTTP; the first history request "
        f"(it sums every Event into the cells) {first_ms:.0f} ms\n"
    )
    print("| request | p50 ms | p95 ms | max ms | one backend: p50 ms | CPU ms per request | what |")
    print("|---|---:|---:|---:|---:|---:|---|")
    for w, c in zip(wall, serial, strict=True):
        print(
            f"| {w.name} | {w.p50:.0f} | {w.p95:.0f} | {w.worst:.0f} | {c.p50:.0f} | {c.cpu or 0:.0f} "
            f"| {w.detail} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
