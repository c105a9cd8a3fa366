"""Help that is right: the quick start of ``tolu --help`` runs as written on a fresh
account, no help text refers to tolu's internals, and the developer commands are
listed apart and say who they are for."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import click
from click.testing import CliRunner

from runner.cli.main import cli
from runner.server.process import free_port

BIN = Path(sys.executable).parent


def _help(*args: str) -> str:
    result = CliRunner().invoke(cli, [*args, "--help"], prog_name="tolu", catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def quick_start() -> list[str]:
    """The commands of the quick start in ``tolu --help``, comments removed."""
    text = _help()
    block = text.split("Quick start", 1)[1].split("\n\n", 1)[0]
    lines = [line.split("#", 1)[0].strip() for line in block.splitlines()[1:]]
    return [line for line in lines if line]


def test_the_quick_start_runs_as_written(tmp_path: Path) -> None:
    commands = quick_start()
    assert commands[0] == "tolu server up --detach" and commands[-1] == "tolu status"
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TOLU_", "XDG_"))}
    # a fresh user's machine: an empty home, tolu on PATH; $TOLU_URL only moves the
    # default port away from the 8000 another program may hold here.
    env.update(
        HOME=str(home), PATH=f"{BIN}:{env.get('PATH', '')}", TOLU_URL=f"http://127.0.0.1:{free_port()}"
    )
    script = "set -ex\n" + "\n".join(commands) + "\ntolu job ls --json > jobs.json\n"
    try:
        done = subprocess.run(
            ["bash", "-c", script],
            cwd=tmp_path,
            env=env,
            input="quick-start-password\nquick-start-password\n",  # the password, twice
            capture_output=True,
            text=True,
            timeout=600,
            start_new_session=True,  # no terminal: the password prompt reads stdin
            check=False,
        )
    finally:
        subprocess.run(["tolu", "server", "down"], env=env, capture_output=True, timeout=120, check=False)
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}"
    import json

    jobs = json.loads((tmp_path / "jobs.json").read_text())
    assert len(jobs) == 10 and {j["state"] for j in jobs} == {"JOB_FINISHED"}
    assert (
        tmp_path / "mysite" / "data" / "hello" / str(jobs[0]["id"]) / "job.out"
    ).read_text() == "Hello, world!\n"
    assert re.search(r"^jobs +10: JOB_FINISHED 10$", done.stdout, re.M), done.stdout


def _all_commands(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    ctx = click.Context(group)
    out = []
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        assert command is not None
        out.append((*prefix, name))
        if isinstance(command, click.Group):
            out += _all_commands(command, (*prefix, name))
    return out


def test_no_help_text_refers_to_internals() -> None:
    internal = re.compile(r"\b(issue|Issue|ISSUE) ?#?\d+|\bTODO\b|\bXXX\b|p2-|room\b")
    commands = _all_commands(cli)
    assert ("dag", "run") in commands and ("job", "wait") in commands and ("bench", "launcher") in commands
    for path in [(), *commands]:
        text = _help(*path)
        assert not internal.search(text), f"tolu {' '.join(path)} --help: {internal.search(text)}"


def test_developer_commands_are_marked() -> None:
    text = _help()
    main, developer = text.split("Developer commands", 1)
    assert not re.search(r"^  (bench|ci) ", main, re.M)
    assert re.search(r"^  bench +For tolu's developers", developer, re.M)
    assert re.search(r"^  ci +For tolu's developers", developer, re.M)
    for name in ("bench", "ci"):
        assert "For tolu's developers" in _help(name)


def test_every_user_command_takes_json() -> None:
    """Scripts can read every command's answer. The exceptions, named here: the developers'
    commands, and the account and credential commands (prompts, codes and secrets are
    their point; docs/auth.md)."""
    exempt = {
        ("register",),
        ("login",),
        ("login", "approve"),
        ("login", "deny"),
        ("token", "create"),
        ("token", "revoke"),
        ("admin", "disable"),
        ("admin", "enable"),
        ("admin", "role"),
        ("admin", "users"),
        ("server", "rotate-key"),
    }
    missing = []
    for path in _all_commands(cli):
        if path[0] in ("bench", "ci") or path in exempt:
            continue
        ctx = click.Context(cli)
        command: click.Command | None = cli
        for name in path:
            assert isinstance(command, click.Group)
            command = command.get_command(ctx, name)
        assert command is not None
        if isinstance(command, click.Group):
            continue
        if "--json" not in {opt for p in command.params for opt in getattr(p, "opts", [])}:
            missing.append(" ".join(path))
    assert missing == []
