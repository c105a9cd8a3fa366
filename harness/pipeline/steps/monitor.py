"""Step 8: watch job and batch-job states and the logs until every job is final.

A line per change (and one every 15 s), each ERROR line as it appears; fails at the deadline.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from harness.pipeline import faults
from harness.pipeline.logs import scan_logs
from harness.pipeline.step import StepFailed
from harness.waiting import WaitTimeout, wait_until

if TYPE_CHECKING:
    from harness.pipeline.context import Run

FINAL_STATES = {"JOB_FINISHED", "FAILED", "KILLED"}
POLL_SEC = 2.0
#: a line at least this often, even when nothing changed: the run is alive
QUIET_SEC = 15.0
BATCH_JOBS_SHOWN = 3


def monitor(run: Run) -> str:
    client = run.client()
    last_line, last_print = "", 0.0

    def states() -> tuple[int, int, str]:
        """Jobs in all, jobs final, and the line of counts per state (printed when it changes)."""
        nonlocal last_line, last_print
        counts = {str(k): n for k, n in client.jobs.counts(site_id=run.site_id).items() if n}
        batch = client.batch_jobs.filter(site_id=run.site_id)
        scan_logs(run)
        faults.kill_launcher_when_due(run, client)
        total = sum(counts.values())
        final = sum(n for s, n in counts.items() if s in FINAL_STATES)
        line = ", ".join(f"{s} {n}" for s, n in sorted(counts.items()))
        bline = ", ".join(f"#{b.id} {b.state}" for b in batch[-BATCH_JOBS_SHOWN:])
        if line != last_line or time.monotonic() - last_print > QUIET_SEC:
            run.print(f"        [{run.elapsed()}] jobs: {line or '-'} | batch jobs: {bline or '-'}")
            last_line, last_print = line, time.monotonic()
        return total, final, line

    try:
        total, _, line = wait_until(
            states,
            check=lambda seen: seen[0] > 0 and seen[1] == seen[0],
            timeout=run.options.deadline_sec,
            interval=POLL_SEC,
            what="every job final",
        )
    except WaitTimeout as exc:
        run.monitor_done = True
        total, final, line = exc.last
        raise StepFailed(
            f"{total - final} of {total} jobs not final after {run.options.deadline_sec:.0f} s: {line}"
        ) from None
    run.monitor_done = True
    return f"all {total} jobs final: {line}"
