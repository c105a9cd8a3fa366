"""Schema fuzzing of every operation (issue 16 item 7, issue 15 item 2): no server error.

The same command (``python -m harness.fuzz URL``: harness/fuzz.py) against the server
the harness runs (a process by default) and against the server container: schemathesis
drives each of the operations of /openapi.json with a logged-in user's token, bounded
in examples per operation and in time, and checks that nothing answers 5xx, that every
answer is one the description lists (status, content type, body), and that a missing
token is 401.
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.fuzz import EXCLUDED, command, prepare

#: per operation; the whole run is bounded by MAX_SECONDS too. Fuzzing and stateful
#: testing repeat until the time is spent, so MAX_SECONDS is what the run costs; one
#: pass of every phase takes about 40 s here (the test checks that each one ran).
MAX_EXAMPLES = 10
MAX_SECONDS = 75
#: fixed, so a failure is reproducible with the same command (and --seed)
SEED = 16


def fuzz(url: str, report_dir: Path) -> subprocess.CompletedProcess[str]:
    token = prepare(url)
    cmd = command(
        url, token, max_examples=MAX_EXAMPLES, max_seconds=MAX_SECONDS, report_dir=report_dir, seed=SEED
    )
    # schemathesis keeps a cache in its working directory: the test's, not the checkout
    return subprocess.run(
        cmd, capture_output=True, text=True, timeout=MAX_SECONDS + 300, check=False, cwd=report_dir
    )


def _verdict(done: subprocess.CompletedProcess[str], report_dir: Path) -> str:
    """What failed, each with schemathesis' own account (its JUnit report: the status, the
    check, and the curl line that reproduces it), then the tail of its summary."""
    import xml.etree.ElementTree as ET

    found = []
    for report in sorted(report_dir.glob("*.xml")):
        for case in ET.parse(report).iter("testcase"):
            for failure in [*case.iter("failure"), *case.iter("error")]:
                text = failure.text or failure.get("message") or ""
                found.append(f"--- {case.get('name')}\n{text[:1500]}")
    tail = "\n".join(done.stdout.splitlines()[-40:])
    return (
        f"schemathesis exit {done.returncode}; same command: python -m harness.fuzz URL --seed {SEED}\n"
        + "\n".join(found)
        + f"\n{tail}"
    )


@pytest.fixture
def own_server(tolu_database: str, tmp_path: Path) -> Iterator[str]:
    """A server of the test's own, on a database of its own: the fuzzer's wrong passwords
    lock its address out of logging in (50 failures in 15 minutes, counted in the
    database), which must not reach the tests that share the session's server."""
    from harness.databases import scratch_database
    from runner.server.process import ServerProcess

    with contextlib.ExitStack() as stack:
        url = None
        if tolu_database == "postgresql":
            url = stack.enter_context(scratch_database(f"tolu_fuzz_{os.getpid()}"))
        server = ServerProcess(tmp_path / "server", database_url=url)
        server.start(timeout=90)
        stack.callback(server.stop)
        yield server.url


def test_fuzzing_every_operation_finds_no_server_error(own_server: str, tmp_path: Path) -> None:
    (tmp_path / "report").mkdir()
    done = fuzz(own_server, tmp_path / "report")
    assert done.returncode == 0, _verdict(done, tmp_path / "report")
    _covered_everything(done.stdout)


def _covered_everything(out: str) -> None:
    """Every selected operation was tested and every phase ran to its end (a budget too
    short for the stateful phase shows it skipped, not failed)."""
    selected = re.search(r"Selected: (\d+)/(\d+)", out)
    tested = re.search(r"Tested: (\d+)", out)
    assert selected and tested, out[-3000:]
    picked, listed = int(selected.group(1)), int(selected.group(2))
    assert int(tested.group(1)) == picked == listed - len(EXCLUDED), out[-3000:]
    for phase in ("Coverage", "Fuzzing", "Stateful"):
        assert re.search(rf"✅ {phase}\b", out), f"the {phase} phase did not run to its end:\n{out[-3000:]}"


@pytest.mark.requires("docker")
def test_fuzzing_the_server_container_finds_no_server_error(tmp_path: Path) -> None:
    from harness.container.image import build_server_image
    from harness.container.server import ContainerServer

    image = build_server_image(log_path=tmp_path / "image-build.log")
    with ContainerServer(tmp_path / "server", image=image) as server:
        (tmp_path / "report").mkdir()
        done = fuzz(server.url, tmp_path / "report")
    assert done.returncode == 0, _verdict(done, tmp_path / "report")
    _covered_everything(done.stdout)


def test_the_fuzz_command_runs_alone() -> None:
    """``python -m harness.fuzz URL`` is the documented command (docs/api.md)."""
    done = subprocess.run(
        [sys.executable, "-m", "harness.fuzz", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0 and "--max-examples" in done.stdout
