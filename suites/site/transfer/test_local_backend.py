"""The local transfer backend copies for real; DONE only when the bytes are there."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.waiting import wait_until
from runner.models import TransferDirection
from runner.platform import transfer
from runner.platform.transfer import FileTransfer, TaskState, TaskStatus
from runner.platform.transfer.local import LocalBackend
from runner.site.settings import TransferSettings


def wait_final(backend: transfer.TransferBackend, task_id: str, timeout: float = 30) -> TaskStatus:
    return wait_until(
        lambda: backend.status([task_id])[task_id],
        check=lambda status: status.state != TaskState.ACTIVE,
        timeout=timeout,
        interval=0.02,
        what=f"task {task_id} to end",
    )


@pytest.fixture
def backend() -> Iterator[LocalBackend]:
    b = LocalBackend("", TransferSettings())
    yield b
    b.close()


def test_registry_knows_local_and_globus() -> None:
    assert transfer.get("local") is LocalBackend
    assert transfer.get("globus").name == "globus"
    with pytest.raises(LookupError, match="unknown transfer backend 'ftp'"):
        transfer.get("ftp")
    assert transfer.parse_location("globus:abc") == ("globus", "abc")
    with pytest.raises(ValueError, match="unknown backend"):
        transfer.parse_location("ftp:host")


def test_stage_in_copies_bytes_and_creates_dirs(tmp_path: Path, backend: LocalBackend) -> None:
    remote = tmp_path / "remote"
    remote.mkdir()
    payloads = {f"f{i}.bin": os.urandom(1000 + i * 977) for i in range(5)}
    for name, data in payloads.items():
        (remote / name).write_bytes(data)
    work = tmp_path / "work"
    files = [FileTransfer(str(remote / n), work / "sub" / n) for n in payloads]
    task = backend.submit(TransferDirection.IN, files)
    assert wait_final(backend, task) == TaskStatus(TaskState.DONE)
    for name, data in payloads.items():
        assert (work / "sub" / name).read_bytes() == data
    assert not list(work.rglob("*.tolu-partial"))


def test_stage_out_under_endpoint_root(tmp_path: Path) -> None:
    root = tmp_path / "shared"
    b = LocalBackend(str(root), TransferSettings())
    try:
        local = tmp_path / "out.txt"
        local.write_bytes(b"result\x00\xff")
        task = b.submit(TransferDirection.OUT, [FileTransfer("/results/a/out.txt", local)])
        assert wait_final(b, task).state == TaskState.DONE
        assert (root / "results/a/out.txt").read_bytes() == b"result\x00\xff"
    finally:
        b.close()


def test_directory_needs_recursive(tmp_path: Path, backend: LocalBackend) -> None:
    src = tmp_path / "dir"
    (src / "deep").mkdir(parents=True)
    (src / "deep" / "x").write_bytes(b"x" * 10)
    task = backend.submit(TransferDirection.IN, [FileTransfer(str(src), tmp_path / "copy")])
    status = wait_final(backend, task)
    assert status.state == TaskState.FAILED
    assert "recursive" in status.detail
    task = backend.submit(TransferDirection.IN, [FileTransfer(str(src), tmp_path / "copy", recursive=True)])
    assert wait_final(backend, task).state == TaskState.DONE
    assert (tmp_path / "copy" / "deep" / "x").read_bytes() == b"x" * 10


def test_missing_source_fails_task_with_reason(tmp_path: Path, backend: LocalBackend) -> None:
    (tmp_path / "ok").write_bytes(b"ok")
    files = [
        FileTransfer(str(tmp_path / "ok"), tmp_path / "w" / "ok"),
        FileTransfer(str(tmp_path / "missing"), tmp_path / "w" / "missing"),
    ]
    task = backend.submit(TransferDirection.IN, files)
    status = wait_final(backend, task)
    assert status.state == TaskState.FAILED
    assert "no such file" in status.detail and "missing" in status.detail
    assert not (tmp_path / "w" / "missing").exists()


def test_unknown_task_is_failed_not_done(backend: LocalBackend) -> None:
    status = backend.status(["local-nope"])["local-nope"]
    assert status.state == TaskState.FAILED
    assert "unknown local task" in status.detail
