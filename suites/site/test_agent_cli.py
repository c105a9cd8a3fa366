"""`tolu site init/ls/start/stop/status` against a real server."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psutil
import pytest
import yaml
from click.testing import CliRunner, Result

from harness.waiting import wait_until
from runner.cli.site import site as site_cli
from runner.client import Client
from runner.site import directory


def run(*args: str) -> Result:
    return CliRunner().invoke(site_cli, list(args))


def test_init_registers_and_keeps_comments(tmp_path: Path, tolu_client: Client) -> None:
    site_dir = tmp_path / "mysite"
    result = run("init", str(site_dir), "--scheduler", "slurm")
    assert result.exit_code == 0, result.output
    assert "registered site 'mysite'" in result.output
    for sub in directory.SUBDIRS:
        assert (site_dir / sub).is_dir()
    assert (site_dir / "apps" / "hello.yml").exists()
    text = (site_dir / "settings.yml").read_text()
    raw = yaml.safe_load(text)
    (remote,) = tolu_client.sites.filter(name="mysite")
    assert raw["site_id"] == remote.id
    assert raw["scheduler"]["name"] == "slurm"
    assert remote.path == str(site_dir.resolve())
    assert remote.settings_summary["scheduler"] == "slurm"
    assert "# Batch scheduler:" in text  # the comments survive recording site_id
    again = run("init", str(site_dir))
    assert again.exit_code == 0 and "nothing to do" in again.output
    listing = run("ls")
    assert listing.exit_code == 0 and "mysite" in listing.output


def test_init_with_server_down_makes_the_directory_and_says_what_next(
    tmp_path: Path, tolu_client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    dead = tmp_path / "dead.yaml"
    dead.write_text(yaml.safe_dump({"url": "http://127.0.0.1:9", "username": "u", "token": "t"}))
    monkeypatch.setenv("TOLU_CONFIG", str(dead))
    site_dir = tmp_path / "later"
    result = run("init", str(site_dir))
    assert result.exit_code == 1
    assert "tolu site init" in result.output and "again" in result.output
    assert "Traceback" not in result.output
    assert yaml.safe_load((site_dir / "settings.yml").read_text())["site_id"] is None


def test_start_status_stop(tmp_path: Path, tolu_client: Client) -> None:
    site_dir = tmp_path / "s"
    assert run("init", str(site_dir)).exit_code == 0
    raw = yaml.safe_load((site_dir / "settings.yml").read_text())
    raw["services"] = ["processing", "transfer"]
    (site_dir / "settings.yml").write_text(yaml.safe_dump(raw))
    status = run("status", str(site_dir))
    assert status.exit_code == 0, status.output
    assert "not running" in status.output and "no jobs" in status.output

    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from runner.cli.main import cli; cli()",
            "site",
            "start",
            str(site_dir),
            "--foreground",
        ],
        env=os.environ.copy(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        def agent_pid() -> int | None:
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
            return directory.running_pid(site_dir)

        assert wait_until(agent_pid, timeout=60, what="the agent's pid file") == proc.pid
        twice = run("start", str(site_dir))
        assert twice.exit_code == 1 and "already running" in twice.output
        status = run("status", str(site_dir))
        assert f"running (pid {proc.pid})" in status.output
        stop = run("stop", str(site_dir))
        assert stop.exit_code == 0 and "agent stopped" in stop.output
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, out
    assert "apps: 1 synced" in out
    assert not directory.pid_path(site_dir).exists()
    assert "not running" in run("stop", str(site_dir)).output
    assert tolu_client.sites.filter(name="s")[0].last_heartbeat is not None


def test_start_detaches_and_stop_stops_by_pid(tmp_path: Path, tolu_client: Client) -> None:
    site_dir = tmp_path / "d"
    assert run("init", str(site_dir)).exit_code == 0
    raw = yaml.safe_load((site_dir / "settings.yml").read_text())
    raw["services"] = ["processing"]
    (site_dir / "settings.yml").write_text(yaml.safe_dump(raw))
    start = run("start", str(site_dir))
    assert start.exit_code == 0, start.output
    pid = directory.running_pid(site_dir)
    assert pid is not None and f"agent started (pid {pid})" in start.output
    try:
        agent = psutil.Process(pid)
        assert os.getsid(pid) == pid  # its own session: detached from the terminal
        assert agent.cmdline()[-2:] == [str(site_dir.resolve()), "--pid-file"]
        twice = run("start", str(site_dir))
        assert twice.exit_code == 1 and f"already running (pid {pid})" in twice.output
    finally:
        stop = run("stop", str(site_dir))
    assert stop.exit_code == 0 and f"agent stopped (pid {pid})" in stop.output, stop.output
    assert not directory.pid_path(site_dir).exists()
    assert "site agent stopped" in directory.log_path(site_dir).read_text()


def test_start_refuses_a_broken_app_file_in_one_line(tmp_path: Path, tolu_client: Client) -> None:
    site_dir = tmp_path / "b"
    assert run("init", str(site_dir)).exit_code == 0
    (site_dir / "apps" / "broken.yml").write_text("name: broken\ncommand_tmplate: echo\n")
    result = run("start", str(site_dir))
    assert result.exit_code == 1
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "broken.yml" in lines[0], result.output
    assert directory.running_pid(site_dir) is None
