"""The transfer service alone against a real server, through the local backend
(bytes checked) and through Globus (globus-sdk's recorded responses)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import responses
from globus_sdk.testing import load_response, register_response_set
from globus_sdk.testing.models import RegisteredResponse, ResponseSet

from harness.fixtures_site import MakeJobs, SiteHandle
from runner.client import Client, InvalidRequest
from runner.models import TransferState
from runner.site.service import SiteContext
from runner.site.transfer import TransferService
from runner.states import JobState

S = JobState
Drive = Callable[..., int]  # fixtures of conftest.py
Report = Callable[..., None]
MakeContext = Callable[..., SiteContext]


@pytest.fixture
def services() -> Iterator[list[TransferService]]:
    made: list[TransferService] = []
    yield made
    for svc in made:
        svc.close()


def new_service(made: list[TransferService], ctx: SiteContext) -> TransferService:
    svc = TransferService(ctx)
    made.append(svc)
    return svc


def staged_jobs(
    make_jobs: MakeJobs, remote: Path, results: Path, n: int
) -> tuple[list[Any], dict[int, bytes]]:
    remote.mkdir(parents=True, exist_ok=True)
    payloads = {}
    specs = []
    for i in range(n):
        data = os.urandom(2048 + 131 * i)
        (remote / f"in{i}.bin").write_bytes(data)
        specs.append(
            [
                {"direction": "in", "source": f"local:{remote}/in{i}.bin", "destination": "in.bin"},
                {"direction": "out", "source": "out.bin", "destination": f"local:{results}/out{i}.bin"},
            ]
        )
        payloads[i] = data
    jobs = [make_jobs("copy", transfers=t, tags={"i": str(i)})[0] for i, t in enumerate(specs)]
    return jobs, payloads


def test_stage_in_and_out_through_local_backend_in_batches(
    tmp_path: Path,
    tolu_client: Client,
    tolu_site: SiteHandle,
    make_jobs: MakeJobs,
    make_ctx: MakeContext,
    services: list[TransferService],
    drive: Drive,
    report: Report,
) -> None:
    ctx = make_ctx(max_items_per_task=2, max_concurrent_tasks=2)
    svc = new_service(services, ctx)
    jobs, payloads = staged_jobs(make_jobs, tmp_path / "remote", tmp_path / "results", 5)
    ids = [j.id for j in jobs]
    assert {j.state for j in tolu_client.jobs.filter(id=ids)} == {S.READY}
    # out items stay pending while their jobs have not run
    drive(svc, ids, {S.PREPROCESSED})
    items = tolu_client.transfers.filter(site_id=tolu_site.id)
    inbound = [i for i in items if i.direction == "in"]
    assert {i.state for i in inbound} == {TransferState.DONE}
    assert len({i.task_id for i in inbound}) == 3  # 5 items, at most 2 per task
    assert {i.state for i in items if i.direction == "out"} == {TransferState.PENDING}
    for i, job in enumerate(tolu_client.jobs.filter(id=ids)):
        workdir = ctx.workdir(job.workdir)
        assert (workdir / "in.bin").read_bytes() == payloads[i]
        # what the app would have done
        (workdir / "out.bin").write_bytes(payloads[i][::-1])
    report(jobs, S.RUN_DONE)
    drive(svc, ids, {S.JOB_FINISHED})
    for i in range(5):
        assert (tmp_path / "results" / f"out{i}.bin").read_bytes() == payloads[i][::-1]
    assert {i.state for i in tolu_client.transfers.filter(site_id=tolu_site.id)} == {TransferState.DONE}


def test_failing_transfer_is_retried_then_fails_its_job_with_the_reason(
    tmp_path: Path,
    tolu_client: Client,
    make_jobs: MakeJobs,
    make_ctx: MakeContext,
    services: list[TransferService],
    drive: Drive,
) -> None:
    svc = new_service(services, make_ctx(retry_limit=2))
    missing = tmp_path / "nowhere" / "in.bin"
    (job,) = make_jobs(
        "copy", transfers=[{"direction": "in", "source": f"local:{missing}", "destination": "in.bin"}]
    )
    rounds = drive(svc, [job.id], {S.FAILED})
    assert rounds >= 3  # one try and two retries, with pauses between
    (item,) = tolu_client.transfers.filter(job_id=job.id)
    assert item.state == TransferState.ERROR
    assert item.error is not None
    assert "failed after 3 attempts" in item.error and str(missing) in item.error
    (event,) = tolu_client.events.filter(job_id=job.id, to_state="FAILED")
    assert str(missing) in str(event.data)
    assert not (svc.ctx.workdir(job.workdir) / "in.bin").exists()


def test_item_that_can_never_work_fails_at_once(
    tmp_path: Path,
    tolu_client: Client,
    make_jobs: MakeJobs,
    make_ctx: MakeContext,
    services: list[TransferService],
    drive: Drive,
) -> None:
    svc = new_service(services, make_ctx(retry_limit=5, retry_backoff_sec=60))
    (tmp_path / "f").write_bytes(b"x")
    # this site reports no transfer locations to the server, so the agent is the one to find it
    (unknown,) = make_jobs("copy", transfers=[{"direction": "in", "source": "mars:/f", "destination": "f"}])
    drive(svc, [unknown.id], {S.FAILED}, timeout=10)
    (a,) = tolu_client.transfers.filter(job_id=unknown.id)
    assert a.error is not None and "unknown transfer location 'mars'" in a.error
    # a local end outside the workdir never gets this far: the server refuses it at creation
    with pytest.raises(InvalidRequest, match="leaves the job's workdir"):
        make_jobs(
            "copy", transfers=[{"direction": "in", "source": f"local:{tmp_path}/f", "destination": "../../f"}]
        )


def test_new_agent_adopts_active_items_and_finishes_them(
    tmp_path: Path,
    tolu_client: Client,
    make_jobs: MakeJobs,
    make_ctx: MakeContext,
    services: list[TransferService],
    drive: Drive,
) -> None:
    jobs, payloads = staged_jobs(make_jobs, tmp_path / "remote", tmp_path / "results", 3)
    ids = [j.id for j in jobs]
    first = new_service(services, make_ctx(retry_limit=1))
    first.flush()
    first.submit_pending()
    first.flush()  # items are reported active; then this "agent" dies
    assert {i.state for i in tolu_client.transfers.filter(job_id=ids[0], direction="in")} == {
        TransferState.ACTIVE
    }
    second = new_service(services, make_ctx(retry_limit=1))
    drive(second, ids, {S.PREPROCESSED})
    for i, job in enumerate(tolu_client.jobs.filter(id=ids)):
        assert (second.ctx.workdir(job.workdir) / "in.bin").read_bytes() == payloads[i]


# ---------------------------------------------------------------- globus, recorded

REMOTE = "6a7c2b4e-0f3a-4b4e-9d7d-2a1f8e1c0b11"
LOCAL = "0c5f3d2a-8b1e-4c7a-a9f0-3e2d1c4b5a69"


def task_answers(task_id: str) -> ResponseSet:
    path = f"/v0.10/task/{task_id}"
    doc = {"DATA_TYPE": "task", "task_id": task_id, "type": "TRANSFER"}
    return ResponseSet(
        succeeded=RegisteredResponse(service="transfer", path=path, json={**doc, "status": "SUCCEEDED"}),
        failed=RegisteredResponse(
            service="transfer",
            path=path,
            json={
                **doc,
                "status": "FAILED",
                "nice_status": "ENDPOINT_ERROR",
                "fatal_error": {"code": "ENDPOINT_ERROR", "description": "endpoint went away"},
            },
        ),
    )


@pytest.mark.parametrize("outcome", ["succeeded", "failed"])
def test_globus_location_through_recorded_responses(
    outcome: str,
    tolu_client: Client,
    tolu_site: SiteHandle,
    make_jobs: MakeJobs,
    make_ctx: MakeContext,
    services: list[TransferService],
    drive: Drive,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TOLU_GLOBUS_TOKEN", "recorded-test-token")
    ctx = make_ctx(
        retry_limit=0,
        locations={"local": "local:", "alcf": f"globus:{REMOTE}"},
        globus={"local_endpoint_id": LOCAL},
    )
    svc = new_service(services, ctx)
    jobs = make_jobs(
        "copy",
        2,
        transfers=[{"direction": "in", "source": "alcf:/proj/in.bin", "destination": "in.bin"}],
    )
    ids = [j.id for j in jobs]
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.add_passthru(tolu_site.settings.server_url)  # the tolu server is real
        load_response("transfer.get_submission_id", requests_mock=mock)
        task_id = load_response("transfer.submit_transfer", requests_mock=mock).metadata["task_id"]
        register_response_set("tolu-service-task", task_answers(task_id))
        load_response("tolu-service-task", case=outcome, requests_mock=mock)
        drive(svc, ids, {S.PREPROCESSED, S.FAILED})
        submits = [c for c in mock.calls if c.request.method == "POST" and "/transfer" in str(c.request.url)]
    assert len(submits) == 1  # both jobs' items in one Globus task
    items = [i for j in ids for i in tolu_client.transfers.filter(job_id=j)]
    assert {i.task_id for i in items} == {task_id}
    states = {j.state for j in tolu_client.jobs.filter(id=ids)}
    if outcome == "succeeded":
        assert states == {S.PREPROCESSED}
        assert {i.state for i in items} == {TransferState.DONE}
    else:
        assert states == {S.FAILED}
        assert all(i.error and "ENDPOINT_ERROR: endpoint went away" in i.error for i in items)
