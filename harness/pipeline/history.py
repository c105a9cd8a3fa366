"""State histories read from the server while it still runs: jobs.json (every job with its
Events), batch_jobs.json, transfers.json and throughput.csv in the run's artifacts."""

from __future__ import annotations

import contextlib
import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from harness.pipeline.context import Run

FINISHED = "JOB_FINISHED"


def save_state(run: Run) -> None:
    if run.site_id is None or not run.url:
        return
    out = run.out_dir
    client = run.client()
    by_job: dict[int, list[dict[str, Any]]] = {}
    for e in client.events.filter(site_id=run.site_id):
        by_job.setdefault(e.job_id, []).append(
            {
                "from": str(e.from_state) if e.from_state else None,
                "to": str(e.to_state),
                "timestamp": e.timestamp.isoformat(),
                "data": e.data,
            }
        )
    rows = []
    for job in client.jobs.filter(site_id=run.site_id):
        row = json.loads(job.model_dump_json())
        row["events"] = by_job.get(job.id, [])
        rows.append(row)
    (out / "jobs.json").write_text(json.dumps(rows, indent=1))
    batch = [json.loads(b.model_dump_json()) for b in client.batch_jobs.filter(site_id=run.site_id)]
    (out / "batch_jobs.json").write_text(json.dumps(batch, indent=1))
    with contextlib.suppress(Exception):
        transfers = [json.loads(t.model_dump_json()) for t in client.transfers.filter(site_id=run.site_id)]
        (out / "transfers.json").write_text(json.dumps(transfers, indent=1))
    finished = sorted(e["timestamp"] for r in rows for e in r["events"] if e["to"] == FINISHED)
    with (out / "throughput.csv").open("w") as fh:
        fh.write("timestamp,jobs_finished\n")
        for n, t in enumerate(finished, start=1):
            fh.write(f"{t},{n}\n")
