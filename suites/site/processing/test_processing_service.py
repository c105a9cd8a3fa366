"""The processing service alone against a real server: hooks run, defaults apply,
failures land in the Event, hook-less apps are left to the server."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from harness.fixtures_site import MakeJobs
from runner.client import Client
from runner.site.processing import ProcessingService
from runner.site.service import SiteContext
from runner.states import JobState

S = JobState
Drive = Callable[..., int]  # fixture of conftest.py
Report = Callable[..., None]  # fixture of conftest.py


@pytest.fixture
def service(site_ctx: SiteContext) -> Iterator[ProcessingService]:
    svc = ProcessingService(site_ctx)
    yield svc
    svc.close()


def test_preprocess_runs_hook_sets_data_and_moves_on(
    service: ProcessingService, tolu_client: Client, make_jobs: MakeJobs, site_ctx: SiteContext, drive: Drive
) -> None:
    jobs = make_jobs("hooked", parameters=[{"word": f"w{i}"} for i in range(6)])
    ids = [j.id for j in jobs]
    assert {j.state for j in tolu_client.jobs.filter(id=ids)} == {S.STAGED_IN}  # waits for the hook
    drive(service, ids, {S.PREPROCESSED})
    for job in tolu_client.jobs.filter(id=ids):
        assert job.data["prepared"] is True
        word = job.parameters["word"]
        assert (site_ctx.workdir(job.workdir) / "pre.txt").read_text() == f"prepared {word}"
    (event,) = tolu_client.events.filter(job_id=ids[0], to_state="PREPROCESSED")
    assert event.data["hook"] == "preprocess"


def test_hookless_app_is_left_to_the_server(
    service: ProcessingService, tolu_client: Client, make_jobs: MakeJobs
) -> None:
    ids = [j.id for j in make_jobs("plain", 3)]
    assert {j.state for j in tolu_client.jobs.filter(id=ids)} == {S.PREPROCESSED}
    service.run_once()
    events = [e for i in ids for e in tolu_client.events.filter(job_id=i)]
    assert not any(e.data.get("hook") for e in events)


def test_exception_in_hook_fails_job_with_traceback(
    service: ProcessingService, tolu_client: Client, make_jobs: MakeJobs, drive: Drive
) -> None:
    (bad,) = make_jobs("hooked", parameters=[{"word": "boom", "pre": "raise"}])
    (ok,) = make_jobs("hooked", parameters=[{"word": "fine"}])
    drive(service, [bad.id, ok.id], {S.FAILED, S.PREPROCESSED})
    assert tolu_client.jobs.get(bad.id).state == S.FAILED
    assert tolu_client.jobs.get(ok.id).state == S.PREPROCESSED
    (event,) = tolu_client.events.filter(job_id=bad.id, to_state="FAILED")
    assert event.from_state == S.STAGED_IN
    assert "RuntimeError: preprocess exploded for boom" in event.data["error"]
    assert any("preprocess" in line for line in event.data["traceback"])


def test_hook_returning_a_forbidden_state_fails_the_job_saying_so(
    service: ProcessingService, tolu_client: Client, make_jobs: MakeJobs, drive: Drive
) -> None:
    (job,) = make_jobs("hooked", parameters=[{"pre": "bad"}])
    drive(service, [job.id], {S.FAILED})
    (event,) = tolu_client.events.filter(job_id=job.id, to_state="FAILED")
    assert "preprocess returned JOB_FINISHED, which cannot follow STAGED_IN" in event.data["error"]


@pytest.mark.parametrize("outcome", [S.RUN_ERROR, S.RUN_TIMEOUT])
def test_error_and_timeout_restart_by_default(
    service: ProcessingService,
    tolu_client: Client,
    make_jobs: MakeJobs,
    drive: Drive,
    report: Report,
    outcome: JobState,
) -> None:
    jobs = make_jobs("hooked", 2, retry_limit=2) + make_jobs("hooked", retry_limit=0)
    ids = [j.id for j in jobs]
    drive(service, ids, {S.PREPROCESSED})
    report(jobs, outcome)
    drive(service, ids, {S.RESTART_READY, S.FAILED})
    states = [j.state for j in tolu_client.jobs.filter(id=ids)]
    assert states == [S.RESTART_READY, S.RESTART_READY, S.FAILED]
    (event,) = tolu_client.events.filter(job_id=ids[0], to_state="RESTART_READY")
    assert event.from_state == outcome
    assert event.data["hook"] == ("handle_error" if outcome == S.RUN_ERROR else "handle_timeout")


def test_postprocess_then_server_finishes(
    service: ProcessingService, tolu_client: Client, make_jobs: MakeJobs, drive: Drive, report: Report
) -> None:
    jobs = make_jobs("hooked", parameters=[{"word": "a"}, {"word": "b", "post": "fail"}])
    ids = [j.id for j in jobs]
    drive(service, ids, {S.PREPROCESSED})
    report(jobs, S.RUN_DONE)
    drive(service, ids, {S.JOB_FINISHED, S.FAILED})
    good, failed = tolu_client.jobs.filter(id=ids)
    assert good.state == S.JOB_FINISHED and good.data["post"] == "prepared a"
    assert failed.state == S.FAILED


@pytest.mark.parametrize("outcome", [S.RUN_ERROR, S.RUN_TIMEOUT])
def test_error_and_timeout_restart_until_the_retry_limit(
    service: ProcessingService,
    tolu_client: Client,
    make_jobs: MakeJobs,
    drive: Drive,
    report: Report,
    outcome: JobState,
) -> None:
    (job,) = make_jobs("hooked", retry_limit=1)
    drive(service, [job.id], {S.PREPROCESSED})
    report([job], outcome)
    drive(service, [job.id], {S.RESTART_READY})
    if outcome == S.RUN_ERROR:
        assert tolu_client.jobs.get(job.id).data["errors_seen"] == 1
    assert tolu_client.jobs.get(job.id).retry_count == 1
    report([job], outcome)
    drive(service, [job.id], {S.FAILED, S.RESTART_READY})
    # the second failure with retry_limit 1: no retries left
    assert tolu_client.jobs.get(job.id).state == S.FAILED
