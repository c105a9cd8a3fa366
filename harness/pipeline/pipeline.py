"""The order of the steps, and what runs whatever happens (see the package docstring)."""

from __future__ import annotations

import contextlib
import shutil
import signal
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from harness.pipeline import report
from harness.pipeline.cleanup import stop_server, stop_site
from harness.pipeline.context import Run, check_faults, new_run_id
from harness.pipeline.options import Options
from harness.pipeline.results import PipelineResult
from harness.pipeline.step import Step
from harness.pipeline.steps import (
    account,
    agent,
    artifacts,
    endpoints,
    findings,
    install,
    jobs,
    monitor,
    publish,
    server,
    site_init,
    staged_out,
)

#: steps 1-8: the run stops at the first that fails
SETUP: tuple[Step, ...] = (
    Step(1, "build the wheel, install it into a fresh venv", install.install),
    Step(2, "start the server", server.start_server),
    Step(3, "register and log in", account.register_and_login),
    Step(4, "create the site", site_init.create_site),
    # the locations first: the server checks a job's stage-in/out ends against its site's
    Step(5, "activate transfer endpoints", endpoints.activate),
    Step(6, "populate apps and jobs", jobs.populate),
    Step(7, "queue maintainer depth 1, start the site agent", agent.start_agent),
    Step(8, "monitor until every job is final", monitor.monitor),
)
#: once a site exists, whatever happened
REPORT_FAILURES = Step(9, "report failures", findings.report_failures)
#: always, after the site's agent and launchers are stopped
COLLECT_ARTIFACTS = Step(10, "collect artifacts", artifacts.collect)
#: once monitoring is over
CHECK_STAGED_OUT = Step(11, "check staged-out files", staged_out.check)
#: once a site exists: the run's report, to the server it tested (then the server stops)
PUBLISH = Step(12, "publish the run to the server", publish.publish_run)


def _run_steps(run: Run) -> None:
    site_stopped = False
    try:
        for step in SETUP:
            if not step(run).ok:
                break
        if run.site_id is not None:
            REPORT_FAILURES(run)
        site_stopped = True
        stop_site(run)
        COLLECT_ARTIFACTS(run)
        if run.monitor_done:
            CHECK_STAGED_OUT(run)
        if run.site_id is not None:
            PUBLISH(run)
    finally:
        # also when interrupted (Ctrl-C, SIGTERM): leave nothing running
        if not site_stopped:
            stop_site(run)
        stop_server(run)


def _verdict(run: Run) -> None:
    result = run.result
    total = time.monotonic() - run.started
    html = run.out_dir / "report.html"
    if result.ok:
        run.print(f"integration run PASSED in {total:.0f} s; report: {html}")
        return
    run.print(f"integration run FAILED in {total:.0f} s at: {result.failed_step}")
    for finding in result.findings:
        run.print(f"  - [{finding.kind}] {finding.message}")
    run.print(f"  report: {html}")


def run_pipeline(options: Options, *, out: Callable[[str], None] | None = None) -> PipelineResult:
    """Run the twelve steps; the report is in ``result.out_dir`` whatever the outcome."""
    check_faults(options.faults)
    run_id = options.run_id or new_run_id()
    run = Run(options, run_id=run_id, work=Path(tempfile.mkdtemp(prefix=f"tolu-{run_id}-")), out=out)
    run.out_dir.mkdir(parents=True, exist_ok=True)
    run.print(
        f"integration run {run_id}: server={options.server} scheduler={options.scheduler}"
        + (f" faults={','.join(options.faults)}" if options.faults else "")
    )
    run.print(f"  work dir {run.work}; artifacts {run.out_dir}")
    try:
        _run_steps(run)
    finally:
        report.write(run)
        if not options.keep_work:
            shutil.rmtree(run.work, ignore_errors=True)
    run.result.ok = all(s.ok for s in run.result.steps) and not run.result.findings
    _verdict(run)
    return run.result


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM (CI cancelling the job) runs the same cleanup as Ctrl-C."""

    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
