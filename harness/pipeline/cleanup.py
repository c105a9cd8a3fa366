"""Stopping what a pipeline run started: batch jobs, the agent, launchers, the server."""

from __future__ import annotations

import contextlib
import os
import signal
from typing import TYPE_CHECKING

from harness.pipeline.history import save_state
from harness.pipeline.launchers import launcher_pids
from harness.pipeline.logs import scan_logs
from harness.waiting import WaitTimeout, wait_until

if TYPE_CHECKING:
    from harness.pipeline.context import Run
    from runner.client import Client
    from runner.models import BatchJob

BATCH_FINAL = {"SUBMIT_FAILED", "FINISHED", "FAILED"}
#: how long removed batch jobs get to reach a final state
BATCH_REMOVAL_SEC = 30
AGENT_STOP_SEC = 20


def _active_batch_jobs(run: Run, client: Client) -> list[BatchJob]:
    return [
        b for b in client.batch_jobs.filter(site_id=run.site_id) if str(b.state).upper() not in BATCH_FINAL
    ]


def stop_everything(run: Run) -> None:
    """Save the state histories, then stop what the run started; each part is tried even when
    another fails (a failed run must not leave daemons behind)."""
    stop_site(run)
    stop_server(run)


def stop_site(run: Run) -> None:
    """Save the state histories, then stop the batch jobs, the agent and the launchers; the server
    stays up (the run is published to it last)."""
    with contextlib.suppress(Exception):
        # state histories are read from the server: save them before it stops
        save_state(run)
    if run.site_dir.joinpath("settings.yml").exists() and run.config.exists() and run.url:
        with contextlib.suppress(Exception):
            client = run.client()
            active = _active_batch_jobs(run, client)
            for b in active:
                with contextlib.suppress(Exception):
                    run.tolu("queue", "rm", str(b.id), timeout=30)
            with contextlib.suppress(WaitTimeout):  # still active after that: stop the rest anyway
                wait_until(
                    lambda: not active or not _active_batch_jobs(run, client),
                    timeout=BATCH_REMOVAL_SEC,
                    interval=1,
                    what="the removed batch jobs to end",
                )
        with contextlib.suppress(Exception):
            run.tolu("site", "stop", str(run.site_dir), "--timeout", str(AGENT_STOP_SEC), timeout=60)
    if run.site_dir.exists():
        for pid in launcher_pids(run.site_dir):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)


def stop_server(run: Run) -> None:
    """Stop the server the run started (none for an existing URL), after a last look at its log."""
    if run.server is not None:
        with contextlib.suppress(Exception):
            scan_logs(run, announce=False)
        with contextlib.suppress(Exception):
            run.server.stop()
