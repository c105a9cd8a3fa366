"""``tolu bench dag``: a DAG prototype instantiated many times in one request.

A ``nodes``-node DAG (a chain head, then a fan-out, then a join: prep -> sim_1..sim_k ->
reduce) of a ``/bin/true`` app is defined once; each trial runs it for ``instances``
instances with one ``POST /dags/{id}/runs`` (``instances`` x ``nodes`` jobs, one
transaction) and times that request, the server's CPU in it, and a status request over
the whole run. Nothing is launched: this measures creating DAG work at the door.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime

from harness.bench import stats
from harness.bench.figures import DAG
from harness.bench.processes import ProcessWatch
from harness.bench.schema import Phase, Scenario, Trial
from harness.bench.stack import Stack
from harness.bench.tasks import parse
from harness.bench.throughput import TrialOutput


@dataclass
class DagScenario:
    stack: Stack
    instances: int = 10_000
    nodes: int = 5

    @property
    def name(self) -> str:
        return f"dag-{self.stack.database.kind}"

    def describe(self) -> Scenario:
        return Scenario(
            name=self.name,
            description=(
                f"a {self.nodes}-node DAG run for {self.instances} instances "
                f"({self.instances * self.nodes} jobs) in one request; {self.stack.database.kind} database"
            ),
            parameters={
                "instances": self.instances,
                "nodes": self.nodes,
                "jobs": self.instances * self.nodes,
                "database": self.stack.database.kind,
                "database_version": self.stack.database.version,
                "server": self.stack.server.kind,
            },
            figure_info=dict(DAG),
        )

    def _define(self) -> int:
        client = self.stack.client
        app = client.apps.get(self.stack.app_for(parse("true"), 1))
        dag = client.dags.builder("bench", site=self.stack.site_id, parameters={"i": None})
        head = dag.node("prep", app=app.name)
        middle = [dag.node(f"sim{k}", app=app.name, parents=[head]) for k in range(max(1, self.nodes - 2))]
        if self.nodes > 2:
            dag.node("reduce", app=app.name, parents=middle, tags={"i": "{i}"})
        return dag.define().id

    def run(self, index: int) -> TrialOutput:
        client = self.stack.client
        dag_id = self._define()
        instances = [{"i": i} for i in range(self.instances)]
        watch = ProcessWatch()
        watch.watch("server", self.stack.server.pid)
        watch.start()
        started_at = datetime.now(UTC)
        try:
            watch.sample()
            c0, w0 = time.perf_counter(), time.time()
            run = client.dags.run(dag_id, instances, tags={"bench": f"dag-{index}"})
            create_s = time.perf_counter() - c0
            watch.sample()
            w1 = time.time()
            s0 = time.perf_counter()
            status = client.dags.status(run)
            status_s = time.perf_counter() - s0
        finally:
            watch.stop()
        server = watch.tree_usage("server", w0, w1)
        jobs = run.jobs
        figures: dict[str, float | None] = {
            "run_jobs_per_s": stats.rate(jobs, create_s),
            "run_request_s": create_s,
            "run_server_cpu_ms_per_job": server.cpu_s / jobs * 1000 if server is not None and jobs else None,
            "status_ms": status_s * 1000,
            "server_peak_rss_mb": watch.peak_mb("server"),
        }
        trial = Trial(
            index=index,
            started_at=started_at,
            seconds=create_s + status_s,
            phases=[
                Phase(
                    name="run",
                    start_s=0.0,
                    end_s=create_s,
                    jobs=jobs,
                    seconds=create_s,
                    jobs_per_s=stats.rate(jobs, create_s),
                ),
            ],
            figures=figures,
            final_states={s.value: n for s, n in status.jobs.items()},
            notes=[f"run {run.id}: {run.instances} instances, {jobs} jobs in one request"],
        )
        trial.processes = watch.rows(w0, w1)
        return TrialOutput(trial, [])
