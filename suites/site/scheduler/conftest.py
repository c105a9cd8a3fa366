"""Fixtures of the scheduler suite: nothing a test submits outlives it."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Iterator

import psutil
import pytest

from harness.fixtures_site import SiteHandle
from runner.client import Client


@pytest.fixture
def reap_batch_jobs(tolu_site: SiteHandle, tolu_client: Client) -> Iterator[None]:
    """After the test: local batch scripts are killed by their recorded PID (process group),
    Slurm jobs of the site are scancel'ed by id."""
    yield
    for pid_file in (tolu_site.path / "batch").glob("*.pid"):
        pid_text, started = pid_file.read_text().split()
        with contextlib.suppress(psutil.Error, ProcessLookupError, PermissionError):
            proc = psutil.Process(int(pid_text))
            if abs(proc.create_time() - float(started)) <= 1.0:
                os.killpg(proc.pid, signal.SIGKILL)
    slurm_ids = [
        b.scheduler_id for b in tolu_client.batch_jobs.filter(site_id=tolu_site.id)
        if b.scheduler_id and b.scheduler_id.isdigit()
    ]
    if slurm_ids:
        subprocess.run(["scancel", *slurm_ids], capture_output=True, timeout=30, check=False)
