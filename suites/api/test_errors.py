"""Every error a person can provoke from the ``tolu`` command is one line with a hint and a
non-zero exit: each bad invocation below runs as a real process, and its exact stderr line
and exit code are checked (the table is the specification; docs/cli.md, "Errors")."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from harness.fixtures_server import ServerHandle
from runner.client import Client
from runner.server.process import free_port

TOLU = str(Path(sys.executable).with_name("tolu"))


@dataclass(frozen=True)
class Case:
    name: str
    argv: list[str]
    #: the one stderr line, with {url}, {port}, {dead}, {config}, {user} filled in
    line: str
    code: int = 1
    stdin: str = ""
    #: "dead": credentials of a server that is not running; "none": no credentials file
    credentials: str = "live"


CASES = [
    Case(
        "missing scheme",
        ["login", "--url", "127.0.0.1:{port}", "-u", "{user}", "--password-stdin"],
        "Error: server URL '127.0.0.1:{port}' has no scheme: use http://127.0.0.1:{port}",
        stdin="password-1234\n",
    ),
    Case(
        "host without scheme",
        ["register", "--url", "localhost:{port}", "-u", "someone", "--password-stdin"],
        "Error: server URL 'localhost:{port}' has no scheme: use http://localhost:{port}",
        stdin="password-1234\n",
    ),
    Case(
        "wrong path",
        ["login", "--url", "{url}/api", "-u", "{user}", "--password-stdin"],
        "Error: POST {url}/api/users/login answered 404 Not Found (no such path): is this a tolu server? "
        "(check the URL: a tolu server answers GET /health)",
        stdin="password-1234\n",
    ),
    Case(
        "https against http",
        ["login", "--url", "https://127.0.0.1:{port}", "-u", "{user}", "--password-stdin"],
        "Error: cannot reach the tolu server at https://127.0.0.1:{port}: TLS handshake failed: the server "
        "speaks plain HTTP? try http://127.0.0.1:{port} (after 3 attempts)",
        stdin="password-1234\n",
    ),
    Case(
        "wrong password: no loop back to tolu login",
        ["login", "--url", "{url}", "-u", "{user}", "--password-stdin"],
        "Error: wrong username or password (check both; `tolu register` creates an account)",
        stdin="not-the-password\n",
    ),
    Case(
        "server down",
        ["job", "ls"],
        "Error: cannot reach the tolu server at http://127.0.0.1:{dead}: connection refused: is it running? "
        "start one with `tolu server up --detach` (after 3 attempts)",
        credentials="dead",
    ),
    Case(
        "server down, serial launcher",
        ["launcher", "--site", "{site}", "--mode", "serial", "--max-idle-sec", "1", "--wait-for-server", "0"],
        "Error: launcher cannot start: cannot reach the tolu server at http://127.0.0.1:{dead}: "
        "connection refused: is it running? start one with `tolu server up --detach` (after 6 attempts)",
        credentials="dead",
    ),
    Case(
        "server down, MPI launcher",
        ["launcher", "--site", "{site}", "--mode", "mpi", "--max-idle-sec", "1", "--wait-for-server", "0"],
        "Error: launcher cannot start: cannot reach the tolu server at http://127.0.0.1:{dead}: "
        "connection refused: is it running? start one with `tolu server up --detach` (after 6 attempts)",
        credentials="dead",
    ),
    Case(
        "not logged in",
        ["status"],
        "Error: no credentials at {config}: log in first with `tolu login`",
        credentials="none",
    ),
    Case(
        "misspelt parameter",
        ["job", "create", "--app", "hello", "--param", "nmae=bob"],
        "Error: --param: app 'hello' has no parameter 'nmae' (its parameters: name='world'); "
        "did you mean 'name'?",
    ),
    Case(
        "reversed stage-out",
        ["job", "create", "--app", "hello", "--stage-out", "local:/results/=out.h5"],
        "Error: --stage-out 'local:/results/=out.h5': stage-out destination 'out.h5' is not LOCATION:PATH "
        "(e.g. local:/data/in.txt); stage-out is WORKDIR_PATH=LOCATION:PATH",
    ),
    Case(
        "unknown app",
        ["job", "create", "--app", "helo"],
        "Error: no app named 'helo' (sync it with `tolu app sync --site DIR`; see `tolu app ls`)",
    ),
    Case(
        "no such job",
        ["job", "show", "999999999"],
        "Error: job 999999999 not found",
    ),
    Case(
        "bad option value",
        ["job", "ls", "--state", "BOGUS"],
        "Error: Invalid value for '--state': 'BOGUS' is not a job state (one of CREATED, AWAITING_PARENTS, "
        "READY, STAGED_IN, PREPROCESSED, RUNNING, RUN_DONE, RUN_ERROR, RUN_TIMEOUT, RESTART_READY, "
        "POSTPROCESSED, STAGED_OUT, JOB_FINISHED, FAILED, KILLED) (see `tolu job ls --help`)",
        code=2,
    ),
    Case(
        "unknown command",
        ["jobs", "ls"],
        "Error: No such command 'jobs'. (see `tolu --help`)",
        code=2,
    ),
]


@pytest.fixture
def world(tolu_server: ServerHandle, tolu_client: Client, tmp_path: Path) -> Callable[[Case], dict[str, str]]:
    """A user with a known password and a site with the app ``hello``; returns, per case,
    the values of its placeholders and the credentials file it runs with."""
    user = f"errors-{uuid.uuid4().hex[:8]}"
    Client.register(tolu_server.url, user, "password-1234")
    site_dir = tmp_path / "site"
    (site_dir / "apps").mkdir(parents=True)
    site = tolu_client.sites.create(name="errors", path=str(site_dir), hostname="localhost")
    (site_dir / "settings.yml").write_text(yaml.safe_dump({"site_id": site.id, "name": site.name}))
    tolu_client.apps.create(
        site_id=site.id, name="hello", command_template="echo hello {name}", parameters={"name": "world"}
    )
    dead_port = free_port()
    dead = tmp_path / "dead.yaml"
    Client(f"http://127.0.0.1:{dead_port}", "token", username=user).save_config(dead)
    live = os.environ["TOLU_CONFIG"]

    def values(case: Case) -> dict[str, str]:
        config = {"live": live, "dead": str(dead), "none": str(tmp_path / "absent.yaml")}[case.credentials]
        return {
            "url": tolu_server.url,
            "port": tolu_server.url.rsplit(":", 1)[1],
            "dead": str(dead_port),
            "site": str(site_dir),
            "user": user,
            "config": config,
        }

    return values


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_invocation_is_one_line_with_a_hint(case: Case, world: Callable[[Case], dict[str, str]]) -> None:
    values = world(case)
    argv = [arg.format(**values) for arg in case.argv]
    env = {**os.environ, "TOLU_CONFIG": values["config"], "COLUMNS": "400"}
    env.pop("TOLU_URL", None)
    done = subprocess.run(
        [TOLU, *argv], input=case.stdin, capture_output=True, text=True, env=env, timeout=300, check=False
    )
    lines = done.stderr.strip().splitlines()
    assert lines == [case.line.format(**values)], textwrap.shorten(done.stderr, 2000)
    assert done.returncode == case.code
