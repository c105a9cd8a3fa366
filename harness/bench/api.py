"""``tolu bench api``: the server's hot paths over HTTP, without a launcher.

- bulk create: ``jobs`` jobs in requests of up to 10,000;
- acquire-and-complete: a session acquires ``batch`` jobs, reports them RUNNING,
  then RUN_DONE (the server carries them on to JOB_FINISHED), as a launcher does;
- page: a filtered 50-row page (tag and state filters, with the total count) out
  of a table filled to ``table_jobs`` jobs.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from harness.bench import stats
from harness.bench.figures import API
from harness.bench.processes import ProcessWatch
from harness.bench.schema import Phase, Scenario, Trial
from harness.bench.stack import Stack
from harness.bench.tasks import parse
from harness.bench.throughput import TrialOutput

GROUPS = 100


@dataclass
class ApiScenario:
    stack: Stack
    jobs: int = 10_000
    batch: int = 1_000
    table_jobs: int = 100_000
    pages: int = 60
    #: the SQLite scenario of the same run, for the PostgreSQL/SQLite ratios.
    reference: ApiScenario | None = None
    last_figures: dict[str, float | None] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return f"api-{self.stack.database.kind}"

    def describe(self) -> Scenario:
        figures = {name: info.model_copy() for name, info in API.items()}
        if self.reference is None:
            figures.pop("ratio_create_vs_sqlite")
            figures.pop("ratio_cycle_vs_sqlite")
        if self.stack.server.pid is None:
            # a server elsewhere: its memory and CPU cannot be seen from here
            for name in ("server_peak_rss_mb", "cycle_server_cpu_ms_per_job"):
                figures[name].aim = None
        return Scenario(
            name=self.name,
            description=(
                f"{self.jobs} jobs bulk created, then acquired and completed in batches of {self.batch}; "
                f"{self.pages} filtered 50-row pages out of {self.table_jobs} jobs; "
                f"{self.stack.database.kind} database"
            ),
            parameters={
                "jobs": self.jobs,
                "batch": self.batch,
                "table_jobs": self.table_jobs,
                "pages": self.pages,
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

            # -- acquire, RUNNING, RUN_DONE in batches
            session = client.sessions.create(self.stack.site_id, ttl_sec=600)
            acquire_ms: list[float] = []
            update_ms: list[float] = []
            cycled = 0
            watch.sample()
            cycle_from = time.time()
            k0 = time.perf_counter()
            while True:
                a = time.perf_counter()
                held = client.sessions.acquire(
                    session.id, max_num_jobs=self.batch, filter_tags={"bench": tag}
                )
                acquire_ms.append((time.perf_counter() - a) * 1000)
                if not held:
                    break
                ids = [int(j.id) for j in held]
                now = datetime.now(UTC)
                u = time.perf_counter()
                # as a launcher's reporter sends them: nobody reads the jobs back
                running = [{"id": i, "state": "RUNNING", "state_timestamp": now} for i in ids]
                client.jobs.bulk_update(running, returning=False)
                done = [{"id": i, "state": "RUN_DONE", "return_code": 0, "state_timestamp": now} for i in ids]
                client.jobs.bulk_update(done, returning=False)
                update_ms.append((time.perf_counter() - u) * 1000 / 2)
                cycled += len(ids)
            cycle_s = time.perf_counter() - k0
            cycle_to = time.time()
            watch.sample()
            client.sessions.delete(session.id)

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
            "cycle_server_cpu_ms_per_job": _server_cpu_ms(watch, cycle_from, cycle_to, cycled),
        }
        if self.reference is not None:
            ref = self.reference.last_figures
            figures["ratio_create_vs_sqlite"] = stats.ratio(
                figures["create_jobs_per_s"], ref.get("create_jobs_per_s")
            )
            figures["ratio_cycle_vs_sqlite"] = stats.ratio(
                figures["cycle_jobs_per_s"], ref.get("cycle_jobs_per_s")
            )
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
        trial = Trial(
            index=index,
            started_at=started_at,
            seconds=total_s,
            phases=phases,
            figures=figures,
            raw={"page_ms": page_ms, "acquire_ms": acquire_ms, "update_ms": update_ms},
            notes=[f"{cycled} of {self.jobs} jobs went through acquire-and-complete"],
        )
        trial.processes = watch.rows(cycle_from, cycle_to)
        return TrialOutput(trial, [])


def _server_cpu_ms(watch: ProcessWatch, start: float, end: float, jobs: int) -> float | None:
    server = watch.usage(start, end).get("server")
    if server is None or not jobs:
        return None
    return server.cpu_s / jobs * 1000
