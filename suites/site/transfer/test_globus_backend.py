"""The globus backend against globus-sdk's recorded responses (globus_sdk.testing).

submit_transfer and get_submission_id come from the SDK's own recorded response
sets; get_task has none in the SDK, so its answers are registered here with
``register_response_set`` in the shape the Transfer API documents.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import responses
from globus_sdk.testing import get_last_request, load_response, register_response_set
from globus_sdk.testing.models import RegisteredResponse, ResponseSet

from runner.models import TransferDirection
from runner.platform.transfer import FileTransfer, TaskState, TransferBackendError
from runner.platform.transfer.globus import GlobusBackend
from runner.site.settings import GlobusSettings, TransferSettings

REMOTE = "6a7c2b4e-0f3a-4b4e-9d7d-2a1f8e1c0b11"
LOCAL = "0c5f3d2a-8b1e-4c7a-a9f0-3e2d1c4b5a69"


def task_document(task_id: str, status: str, **extra: object) -> dict[str, object]:
    return {
        "DATA_TYPE": "task",
        "task_id": task_id,
        "type": "TRANSFER",
        "status": status,
        "nice_status": extra.pop("nice_status", None),
        "files": 2,
        "files_transferred": 2 if status == "SUCCEEDED" else 0,
        "fatal_error": extra.pop("fatal_error", None),
        **extra,
    }


def register_tasks(task_id: str) -> None:
    """get_task answers for one task id, one case per outcome."""
    path = f"/v0.10/task/{task_id}"
    register_response_set(
        "tolu-get-task",
        ResponseSet(
            active=RegisteredResponse(service="transfer", path=path, json=task_document(task_id, "ACTIVE")),
            succeeded=RegisteredResponse(
                service="transfer", path=path, json=task_document(task_id, "SUCCEEDED")
            ),
            failed=RegisteredResponse(
                service="transfer",
                path=path,
                json=task_document(
                    task_id,
                    "FAILED",
                    nice_status="PERMISSION_DENIED",
                    fatal_error={"code": "PERMISSION_DENIED", "description": "permission denied on /proj/in"},
                ),
            ),
            weird=RegisteredResponse(service="transfer", path=path, json=task_document(task_id, "PAUSED_X")),
            missing=RegisteredResponse(
                service="transfer",
                path=path,
                status=404,
                json={"code": "TaskNotFound", "message": f"Task {task_id} not found", "request_id": "x"},
            ),
        ),
    )


@pytest.fixture
def mock() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        yield rsps


@pytest.fixture
def backend(monkeypatch: pytest.MonkeyPatch) -> GlobusBackend:
    monkeypatch.setenv("TOLU_GLOBUS_TOKEN", "recorded-test-token")
    return GlobusBackend(REMOTE, TransferSettings(globus=GlobusSettings(local_endpoint_id=LOCAL)))


def submit_two(backend: GlobusBackend, mock: responses.RequestsMock, direction: TransferDirection) -> str:
    load_response("transfer.get_submission_id", requests_mock=mock)
    meta = load_response("transfer.submit_transfer", requests_mock=mock).metadata
    files = [
        FileTransfer("/proj/in/a.dat", Path("/site/data/app/1/a.dat")),
        FileTransfer("/proj/in/dir", Path("/site/data/app/1/dir"), recursive=True),
    ]
    task_id = backend.submit(direction, files)
    assert task_id == meta["task_id"]
    return task_id


def sent_transfer(mock: responses.RequestsMock) -> dict[str, object]:
    posts = [c.request for c in mock.calls if c.request.method == "POST"]
    assert posts, "no transfer was submitted"
    body = posts[-1].body
    assert body is not None
    return dict(json.loads(body))


def test_stage_in_submits_one_task_remote_to_local(
    backend: GlobusBackend, mock: responses.RequestsMock
) -> None:
    submit_two(backend, mock, TransferDirection.IN)
    doc = sent_transfer(mock)
    assert doc["source_endpoint"] == REMOTE and doc["destination_endpoint"] == LOCAL
    data = doc["DATA"]
    assert isinstance(data, list)
    assert [(d["source_path"], d["destination_path"], d["recursive"]) for d in data] == [
        ("/proj/in/a.dat", "/site/data/app/1/a.dat", False),
        ("/proj/in/dir", "/site/data/app/1/dir", True),
    ]
    last = get_last_request(requests_mock=mock)
    assert last is not None and last.headers["Authorization"] == "Bearer recorded-test-token"


def test_stage_out_goes_local_to_remote(backend: GlobusBackend, mock: responses.RequestsMock) -> None:
    submit_two(backend, mock, TransferDirection.OUT)
    doc = sent_transfer(mock)
    assert doc["source_endpoint"] == LOCAL and doc["destination_endpoint"] == REMOTE
    data = doc["DATA"]
    assert isinstance(data, list)
    assert data[0]["source_path"] == "/site/data/app/1/a.dat"
    assert data[0]["destination_path"] == "/proj/in/a.dat"


@pytest.mark.parametrize(
    ("case", "state", "detail"),
    [
        ("active", TaskState.ACTIVE, ""),
        ("succeeded", TaskState.DONE, ""),
        ("failed", TaskState.FAILED, "PERMISSION_DENIED: permission denied on /proj/in"),
        ("weird", TaskState.ACTIVE, ""),
        ("missing", TaskState.FAILED, "not found"),
    ],
)
def test_task_status(
    backend: GlobusBackend, mock: responses.RequestsMock, case: str, state: TaskState, detail: str
) -> None:
    task_id = submit_two(backend, mock, TransferDirection.IN)
    register_tasks(task_id)
    load_response("tolu-get-task", case=case, requests_mock=mock)
    status = backend.status([task_id])[task_id]
    assert status.state == state
    assert detail in status.detail


def test_failed_submit_raises_with_globus_reason(
    backend: GlobusBackend, mock: responses.RequestsMock
) -> None:
    load_response("transfer.get_submission_id", requests_mock=mock)
    load_response("transfer.submit_transfer", case="failure", requests_mock=mock)
    with pytest.raises(TransferBackendError, match=r"400 ClientError\.BadRequest\.NoTransferItems"):
        backend.submit(TransferDirection.IN, [FileTransfer("/a", Path("/b"))])


def test_no_credentials_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TOLU_GLOBUS_TOKEN", raising=False)
    monkeypatch.delenv("TOLU_GLOBUS_CLIENT_SECRET", raising=False)
    b = GlobusBackend(REMOTE, TransferSettings(globus=GlobusSettings(local_endpoint_id=LOCAL)))
    with pytest.raises(TransferBackendError, match=r"no credentials.*TOLU_GLOBUS_TOKEN"):
        b.submit(TransferDirection.IN, [FileTransfer("/a", Path("/b"))])
