"""The ``tolu`` command end to end against a real server: accounts, apps, jobs, errors."""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner, Result

from harness.fixtures_server import ServerHandle
from runner.cli.main import cli
from runner.client import Client
from runner.server.process import free_port


def tolu(*args: str, input: str | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), input=input, catch_exceptions=False, prog_name="tolu")


def ok(*args: str, input: str | None = None) -> str:
    result = tolu(*args, input=input)
    assert result.exit_code == 0, f"tolu {' '.join(args)}: {result.output}\n{result.stderr}"
    return result.stdout


def error(*args: str, input: str | None = None, code: int = 1) -> str:
    """Run a command that must fail: exit ``code``, one line on stderr."""
    result = tolu(*args, input=input)
    assert result.exit_code == code, f"tolu {' '.join(args)} exited {result.exit_code}: {result.output}"
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


@pytest.fixture
def site_dir(tolu_client: Client, tmp_path: Path) -> Path:
    """A registered site directory with two apps (YAML and Python)."""
    root = tmp_path / "site"
    (root / "apps").mkdir(parents=True)
    site = tolu_client.sites.create(name=f"site-{tmp_path.name}", path=str(root), hostname="localhost")
    (root / "settings.yml").write_text(yaml.safe_dump({"site_id": site.id, "name": site.name}))
    (root / "apps" / "hello.yml").write_text(
        textwrap.dedent("""\
        name: hello
        description: say hello
        command_template: echo hello {name}
        parameters: {name: world}
    """)
    )
    (root / "apps" / "square.py").write_text(
        textwrap.dedent("""\
        from runner.apps import python_app

        @python_app
        def square(x):
            return x * x
    """)
    )
    return root


def test_register_and_login_read_the_password_from_stdin(
    tolu_server: ServerHandle, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "creds.yaml"
    monkeypatch.setenv("TOLU_CONFIG", str(config))
    url = tolu_server.url
    out = ok("register", "--url", url, "-u", "cli-alice", "--password-stdin", input="long-password-1\n")
    assert "Registered cli-alice" in out and "Logged in as cli-alice" in out
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    config.unlink()
    out = ok("login", "--url", url, "--username", "cli-alice", "--password-stdin", input="long-password-1\n")
    assert f"token saved to {config}" in out
    assert Client.from_config().me().username == "cli-alice"
    # Prompted (hidden) password; the confirmation must match on register.
    # Without --url (and $TOLU_URL): the saved credentials' server.
    monkeypatch.delenv("TOLU_URL", raising=False)
    assert f"Logged in as cli-alice at {url}" in ok("login", "-u", "cli-alice", input="long-password-1\n")
    assert (
        "password"
        in error(
            "login", "--url", url, "-u", "cli-alice", "--password-stdin", input="wrong-password\n"
        ).lower()
    )
    error("register", "--url", url, "-u", "cli-alice", "--password-stdin", input="long-password-1\n")
    assert "needs --username" in error("login", "--url", url, "--password-stdin", input="x\n")
    # The password never goes on the command line: there is no option for it.
    assert tolu("login", "--password", "x").exit_code == 2


def test_app_sync_and_ls(tolu_client: Client, site_dir: Path) -> None:
    out = ok("app", "sync", "--site", str(site_dir))
    assert "+ created hello" in out and "+ created square" in out
    out = ok("app", "sync", "--site", str(site_dir))
    assert "= unchanged hello" in out and "= unchanged square" in out and "0 created" in out
    (site_dir / "apps" / "hello.yml").write_text("name: hello\ncommand_template: echo hi {name}\n")
    assert "~ updated hello" in ok("app", "sync", "--site", str(site_dir))
    assert tolu_client.apps.filter(name="hello")[0].parameters == {"name": None}
    table = ok("app", "ls", "--site", str(site_dir))
    assert "hello" in table and "echo hi {name}" in table and "(python function)" in table
    listed = json.loads(ok("app", "ls", "--json"))
    assert sorted(a["name"] for a in listed) == ["hello", "square"]
    (site_dir / "apps" / "broken.yml").write_text("name: b\ncommand_template: x\nnodes: 2\n")
    assert "broken.yml: nodes: Extra inputs" in error("app", "sync", "--site", str(site_dir))
    assert "not a site directory" in error("app", "sync", "--site", str(site_dir / "apps"))


def test_jobs_create_list_modify_remove(tolu_client: Client, site_dir: Path) -> None:
    ok("app", "sync", "--site", str(site_dir))
    site = str(site_dir)
    out = ok(
        "job",
        "create",
        "--app",
        "hello",
        "--site",
        site,
        "-n",
        "1000",
        "--tag",
        "run=a",
        "--tag",
        "kind=many",
        "--param",
        "name=x",
    )
    assert out.startswith("Created 1000 jobs of app hello") and "PREPROCESSED" in out
    assert tolu_client.jobs.count(tags={"run": "a", "kind": "many"}) == 1000

    # A small DAG: one parent, two children waiting for it.
    parent = ok("job", "create", "--app", "hello", "--tag", "run=dag", "-q").strip()
    assert parent.isdigit()
    out = ok(
        "job",
        "create",
        "--app",
        "hello",
        "--tag",
        "run=dag",
        "-n",
        "2",
        "--parent",
        parent,
        "--nodes",
        "2",
        "--ranks-per-node",
        "4",
        "--wall-time-min",
        "5",
        "--retry-limit",
        "1",
    )
    assert "AWAITING_PARENTS" in out
    children = tolu_client.jobs.filter(parent_id=int(parent))
    assert len(children) == 2 and {(j.num_nodes, j.ranks_per_node, j.wall_time_min) for j in children} == {
        (2, 4, 5)
    }

    by_state = ok("job", "ls", "--by-state")
    assert "PREPROCESSED" in by_state and "1001" in by_state and "AWAITING_PARENTS" in by_state
    assert json.loads(ok("job", "ls", "--by-state", "--tag", "run=dag", "--json")) == {
        "PREPROCESSED": 1,
        "AWAITING_PARENTS": 2,
    }
    table = ok("job", "ls", "--tag", "run=dag")
    assert table.splitlines()[0].split() == ["id", "app", "state", "tags", "nodes", "updated"]
    assert len(table.strip().splitlines()) == 4 and "run=dag" in table
    assert "(100 of 1000 jobs shown" in ok("job", "ls", "--tag", "run=a")
    rows = json.loads(ok("job", "ls", "--tag", "run=a", "--limit", "0", "--json"))
    assert len(rows) == 1000 and rows[0]["parameters"] == {"name": "x"}

    shown = ok("job", "show", parent)
    assert re.search(r"^state +PREPROCESSED$", shown, re.M) and "run=dag" in shown and "/data/" in shown
    assert "STAGED_IN" in shown and json.loads(ok("job", "show", parent, "--json"))["events"]
    assert "job 999999999 not found" in error("job", "show", "999999999")

    # modify: all or nothing, by id.
    first, second = (str(j.id) for j in children)
    assert "Modified 2 jobs (now KILLED)" in ok("job", "modify", first, second, "--state", "KILLED")
    line = error("job", "modify", parent, first, "--state", "RUN_DONE")
    assert "cannot go from" in line
    assert tolu_client.jobs.get(int(parent)).state == "PREPROCESSED"
    assert "Modified 1 job" in ok("job", "modify", parent, "--tag", "extra=1", "--param", "name=y")
    job = tolu_client.jobs.get(int(parent))
    assert job.tags == {"run": "dag", "extra": "1"} and job.parameters == {"name": "y"}
    assert "no such jobs: 999999999" in error("job", "modify", "999999999", "--state", "KILLED")

    # rm: counts, refuses without a filter, never skips silently.
    assert "no jobs selected" in error("job", "rm")
    assert "no such jobs: 999999999 (nothing removed)" in error("job", "rm", parent, "999999999")
    assert ok("job", "rm", "--tag", "run=a", "--state", "PREPROCESSED").strip() == "Removed 1000 jobs"
    assert ok("job", "rm", first).strip() == "Removed 1 job"
    assert ok("job", "rm", "--all", "--yes").strip() == "Removed 2 jobs"
    assert tolu_client.jobs.count() == 0


def test_job_create_errors_are_one_line(tolu_client: Client, site_dir: Path) -> None:
    ok("app", "sync", "--site", str(site_dir))
    assert "no app named 'nope'" in error("job", "create", "--app", "nope")
    assert "--param 'name': expected KEY=VALUE" in error("job", "create", "--app", "hello", "--param", "name")
    assert error("job", "create", "--app", "hello", "--parent", "999999999") == (
        "Error: --parent: parent job 999999999 not found"
    )
    assert "--stage-in" in error("job", "create", "--app", "hello", "--stage-in", "nowhere")
    # Usage errors (exit 2) are one line too, pointing at --help.
    line = error("job", "ls", "--state", "BOGUS", code=2)
    assert "'BOGUS' is not a job state" in line and "(see `tolu job ls --help`)" in line
    assert "Missing option '--app'" in error("job", "create", code=2)
    assert "Did you mean 'ls'" in error("job", "lss", code=2)
    assert ok("job", "ls", "--state", "killed", "--by-state").split() == ["state", "count", "total", "0"]


def test_no_traceback_in_a_real_process(tmp_path: Path) -> None:
    """The installed entry point: errors are one line on stderr, exit 1, no traceback."""
    tolu_bin = Path(sys.executable).with_name("tolu")
    env = {**os.environ, "TOLU_CONFIG": str(tmp_path / "none.yaml")}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(tolu_bin), *args], capture_output=True, text=True, env=env, timeout=60)

    res = run("job", "ls")
    assert res.returncode == 1 and res.stderr.strip() == (
        f"Error: no credentials at {tmp_path / 'none.yaml'}: log in first with `tolu login`"
    )
    Client("http://127.0.0.1:9", "t", username="u").save_config(tmp_path / "none.yaml")
    env["TOLU_CONFIG"] = str(tmp_path / "none.yaml")
    dead = tmp_path / "dead.yaml"
    Client(f"http://127.0.0.1:{free_port()}", "t", username="u").save_config(dead)
    env["TOLU_CONFIG"] = str(dead)
    res = run("job", "ls")
    assert res.returncode == 1 and len(res.stderr.strip().splitlines()) == 1
    assert "cannot reach the tolu server" in res.stderr and "Traceback" not in res.stderr
    res = run("app", "sync", "--site", str(tmp_path))
    assert res.returncode == 1 and "not a site directory" in res.stderr and len(res.stderr.splitlines()) == 1
