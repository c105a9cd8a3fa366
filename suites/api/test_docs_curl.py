"""The curl commands of docs/api.md ("The main flows with curl"), run as written against a
live server, in order, as one bash script (what a reader pasting them does)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import uuid

import pytest

from harness.checkout import REPO_ROOT
from harness.fixtures_server import ServerHandle
from runner.client import Client

DOC = REPO_ROOT / "docs" / "api.md"
SECTION = "## The main flows with curl"


def doc_commands() -> list[str]:
    """The ```bash blocks of the section, in order."""
    text = DOC.read_text()
    assert SECTION in text, f"{DOC} lost its section {SECTION!r}"
    section = text.split(SECTION, 1)[1].split("\n## ", 1)[0]
    return re.findall(r"^```bash\n(.*?)^```", section, re.S | re.M)


@pytest.mark.skipif(not (shutil.which("curl") and shutil.which("jq")), reason="needs curl and jq")
def test_the_curl_commands_of_the_api_page_work(tolu_server: ServerHandle) -> None:
    blocks = doc_commands()
    assert len(blocks) >= 6
    user, password = f"docs-{uuid.uuid4().hex[:10]}", "docs-password-123"
    env = {
        "PATH": os.environ["PATH"],
        "TOLU_URL": tolu_server.url,
        "TOLU_USER": user,
        "TOLU_PASSWORD": password,
    }
    proc = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", "\n".join(blocks)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    out = proc.stdout.splitlines()
    assert json.loads("\n".join(out[:6]))["status"] == "ok"  # the pretty-printed /health
    assert "HTTP 409" in out and any("cannot go from PREPROCESSED to JOB_FINISHED" in line for line in out)

    # what the commands did, seen through the Python client
    client = Client.login(tolu_server.url, user, password)
    jobs = client.jobs.filter(tags={"run": "demo"}, ordering="id")
    assert [j.idempotency_key for j in jobs] == ["demo-prep", "demo-sim", "demo-solo"]  # the resend made none
    assert f"[{','.join(str(j.id) for j in jobs)}]" in out
    assert jobs[1].parents == [jobs[0].id]
    assert jobs[2].tags == {"run": "demo", "checked": "yes"} and jobs[2].data == {"note": "seen"}
    client.close()
