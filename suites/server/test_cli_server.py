"""``tolu server up --detach / status / down`` as a user runs them."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import psutil
import requests

from runner.server.process import free_port


def tolu(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "runner.cli.main", "server", *args],
        capture_output=True,
        text=True,
        timeout=180,
        env=env,
    )


def test_up_status_down(tmp_path: Path) -> None:
    env = {**os.environ, "TOLU_DATA_DIR": str(tmp_path / "data")}
    env.pop("TOLU_DATABASE_URL", None)
    up = tolu("up", "--detach", "--port", "0", env=env)
    assert up.returncode == 0, up.stderr
    info = json.loads((tmp_path / "data" / "server.pid").read_text())
    try:
        assert info["url"] in up.stdout and "server.log" in up.stdout
        assert requests.get(info["url"] + "/health", timeout=10).json()["status"] == "ok"
        assert (tmp_path / "data" / "tolu.db").exists()
        assert oct((tmp_path / "data" / "signing_keys.json").stat().st_mode & 0o777) == "0o600"
        status = tolu("status", env=env)
        assert status.returncode == 0 and info["url"] in status.stdout
        again = tolu("up", "--detach", "--port", "0", env=env)
        assert again.returncode != 0 and "already running" in again.stderr
        assert len(again.stderr.strip().splitlines()) == 1
    finally:
        down = tolu("down", env=env)
    assert down.returncode == 0, down.stderr
    assert not psutil.pid_exists(info["pid"]) or psutil.Process(info["pid"]).status() == psutil.STATUS_ZOMBIE
    assert not (tmp_path / "data" / "server.pid").exists()
    gone = tolu("status", env=env)
    assert gone.returncode != 0 and "no tolu server running" in gone.stderr


def test_up_refuses_an_old_schema_with_the_command_to_run(tmp_path: Path) -> None:
    env = {**os.environ, "TOLU_DATA_DIR": str(tmp_path)}
    env.pop("TOLU_DATABASE_URL", None)
    assert tolu("migrate", "--revision", "0001", env=env).returncode == 0
    up = tolu("up", "--detach", "--port", "0", env=env)
    assert up.returncode != 0
    assert "tolu server migrate" in up.stderr and len(up.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "server.pid").exists()


def test_a_free_port_lies_below_the_range_outgoing_connections_draw_from() -> None:
    # a port from the ephemeral range can become some client's source port before the
    # listener binds it; ports chosen for servers and containers stay out of it
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    ports = {free_port() for _ in range(20)}
    assert all(port < low for port in ports)
    for port in ports:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port))  # and nothing holds it
