"""Step 9: what went wrong, each a Finding: ERROR lines in any log, FAILED jobs not meant to
fail, meant-to-fail jobs that did not, stuck jobs, failed batch jobs, jobs that lost their
launcher (RUN_TIMEOUT)."""

from __future__ import annotations

import datetime as dt
import json
from typing import TYPE_CHECKING

from harness.pipeline.logs import scan_logs
from harness.pipeline.results import Finding
from harness.pipeline.step import StepFailed
from harness.pipeline.steps.monitor import FINAL_STATES

if TYPE_CHECKING:
    from harness.pipeline.context import Run
    from runner.client import Client
    from runner.models import Job

#: how much of a log line, an Event's data or a status a finding quotes
QUOTE_CHARS = 300
REASON_CHARS = 200
LAUNCHER_LOSS = {"lost-launcher", "batch-failed", "timeout"}


def _why(client: Client, job_id: int) -> str:
    """The last error or reason its Events give for a job."""
    events = list(reversed(client.events.filter(job_id=job_id)))
    for key in ("error", "traceback", "reason"):  # the cause before the verdict
        for event in events:
            if event.data.get(key):
                return f"{event.to_state}: {str(event.data[key]).strip().splitlines()[-1][:REASON_CHARS]}"
    return "no error in its events"


def _job_out(run: Run, job: Job) -> str:
    path = run.site_dir / "data" / job.workdir / "job.out"
    if not path.exists():
        return f"{run.rel(path)} (missing)"
    tail = " | ".join(path.read_text(errors="replace").strip().splitlines()[-3:])
    return f"{run.rel(path)}: {tail[:REASON_CHARS]}"


def _job_findings(run: Run, client: Client) -> list[Finding]:
    findings = []
    now = dt.datetime.now(dt.UTC)
    for job in client.jobs.filter(site_id=run.site_id):
        state = str(job.state)
        if state == "FAILED" and job.id not in run.expect_fail:
            findings.append(
                Finding(
                    "unexpected-failure",
                    f"job {job.id} (tags {job.tags}) FAILED although it was not meant to: "
                    f"return code {getattr(job, 'return_code', None)}; {_why(client, job.id)}; "
                    f"output {_job_out(run, job)}",
                    f"job {job.id}",
                )
            )
        elif job.id in run.expect_fail and state != "FAILED":
            findings.append(
                Finding(
                    "expected-failure-missing",
                    f"job {job.id} was meant to fail but ended {state}",
                    f"job {job.id}",
                )
            )
        elif state not in FINAL_STATES:
            events = client.events.filter(job_id=job.id)
            since = events[-1].timestamp if events else job.updated_at
            if since.tzinfo is None:
                since = since.replace(tzinfo=dt.UTC)
            findings.append(
                Finding(
                    "stuck",
                    f"job {job.id} (tags {job.tags}) stuck in {state} for "
                    f"{(now - since).total_seconds():.0f} s",
                    f"job {job.id}",
                )
            )
    return findings


def _launcher_findings(run: Run, client: Client) -> list[Finding]:
    findings = []
    for event in client.events.filter(site_id=run.site_id, to_state="RUN_TIMEOUT"):
        data = json.dumps(event.data)
        findings.append(
            Finding(
                "lost-launcher" if "session" in data.lower() else "timeout",
                f"job {event.job_id} went RUNNING -> RUN_TIMEOUT at {event.timestamp:%H:%M:%S} "
                f"({data[:REASON_CHARS]}): its launcher stopped heartbeating or it hit its wall time",
                f"job {event.job_id}",
            )
        )
    for b in client.batch_jobs.filter(site_id=run.site_id):
        if str(b.state).upper() in {"FAILED", "SUBMIT_FAILED"}:
            findings.append(
                Finding(
                    "batch-failed",
                    f"batch job {b.id} (scheduler id {b.scheduler_id}) ended {b.state}: "
                    f"{json.dumps(b.status_info)[:QUOTE_CHARS]}",
                    f"batch job {b.id}",
                )
            )
    if run.killed_launcher is not None and not any(f.kind in LAUNCHER_LOSS for f in findings):
        findings.append(
            Finding(
                "lost-launcher",
                f"launcher pid {run.killed_launcher} was killed, and no job or batch job shows it",
                "launcher",
            )
        )
    return findings


def report_failures(run: Run) -> str:
    client = run.client()
    scan_logs(run, announce=False)
    findings = run.result.findings
    for where, line in run.logs.errors:
        findings.append(Finding("error-log", f"ERROR line in {where}: {line[:QUOTE_CHARS]}", where))
    findings += _job_findings(run, client)
    findings += _launcher_findings(run, client)
    if findings:
        kinds: dict[str, int] = {}
        for f in findings:
            kinds[f.kind] = kinds.get(f.kind, 0) + 1
        raise StepFailed(
            f"{len(findings)} finding(s): "
            + ", ".join(f"{k} {n}" for k, n in kinds.items())
            + "\n"
            + "\n".join(f"[{f.kind}] {f.message}" for f in findings)
        )
    return "no ERROR lines, no unexpected failures, nothing stuck"
