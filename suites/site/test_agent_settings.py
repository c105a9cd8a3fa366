"""Site settings and the agent loop, without a server: the commented default,
validation at start, and one warning (not a traceback per second) when the
server cannot be reached."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from pydantic import BaseModel

from harness.waiting import wait_until
from runner.cli.site import site as site_cli
from runner.site import directory
from runner.site.settings import SiteSettings, load


def field_paths(model: type[BaseModel], prefix: str = "") -> list[str]:
    paths = []
    for name, info in model.model_fields.items():
        ann = info.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            paths.extend(field_paths(ann, f"{prefix}{name}."))
        else:
            paths.append(f"{prefix}{name}")
    return paths


def lookup(data: dict[str, Any], dotted: str) -> Any:
    for part in dotted.split("."):
        data = data[part]
    return data


@pytest.mark.parametrize("scheduler", directory.SCHEDULERS)
def test_default_settings_explain_every_key_and_equal_the_defaults(scheduler: str) -> None:
    text = directory.render_settings(name="my site", scheduler=scheduler, server_url="http://h:1")
    raw = yaml.safe_load(text)
    settings = SiteSettings.model_validate(raw)
    assert settings.scheduler.name == scheduler
    assert settings.name == "my site"
    expected = SiteSettings(name="my site", server_url="http://h:1").model_dump()
    expected["scheduler"]["name"] = scheduler
    expected["launcher"]["mpi_launcher"] = settings.launcher.mpi_launcher
    assert settings.model_dump() == expected
    lines = text.splitlines()
    for path in field_paths(SiteSettings):
        lookup(raw, path)  # every key is written out ...
        key = path.rsplit(".", 1)[-1]
        i = next(i for i, line in enumerate(lines) if line.strip().startswith(f"{key}:"))
        # ... with a comment above it, or inside a commented group of keys
        above = [line for line in lines[max(0, i - 8) : i] if line.strip().startswith("#")]
        assert above, f"{path} has no explanation"


def test_bad_value_names_file_key_and_problem(tmp_path: Path) -> None:
    (tmp_path / "settings.yml").write_text(
        directory.render_settings(name="s").replace("max_items_per_task: 200", "max_items_per_task: 0")
    )
    with pytest.raises(ValueError, match=r"settings\.yml: transfer\.max_items_per_task: .*greater than"):
        load(tmp_path)


def test_site_start_with_bad_setting_is_one_line_and_nonzero(tmp_path: Path) -> None:
    text = directory.render_settings(name="s").replace("site_id: null", "site_id: 3")
    (tmp_path / "settings.yml").write_text(text.replace('local: "local:"', 'local: "ftp:host"'))
    result = CliRunner().invoke(site_cli, ["start", str(tmp_path)])
    assert result.exit_code != 0
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    assert str(tmp_path / "settings.yml") in lines[0]
    assert "transfer.locations" in lines[0] and "ftp" in lines[0]


def test_site_start_unregistered_says_what_to_do(tmp_path: Path) -> None:
    (tmp_path / "settings.yml").write_text(directory.render_settings(name="s"))
    result = CliRunner().invoke(site_cli, ["start", str(tmp_path)])
    assert result.exit_code != 0
    assert "tolu site init" in result.output


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_agent_with_server_down_warns_once_and_stops_on_sigterm(tmp_path: Path) -> None:
    """Nothing listens on the server port: one warning, no tracebacks, clean SIGTERM."""
    site_dir = tmp_path / "site"
    directory.make_layout(site_dir)
    url = f"http://127.0.0.1:{free_port()}"
    text = directory.render_settings(name="s", server_url=url).replace("site_id: null", "site_id: 1")
    text = text.replace("poll_interval_sec: 2.0", "poll_interval_sec: 0.1")
    text = text.replace(
        "services: [processing, transfer, scheduler, queue_maintainer, autoscaler]",
        "services: [processing, transfer]",
    )
    (site_dir / "settings.yml").write_text(text)
    config = tmp_path / "credentials.yaml"
    config.write_text(yaml.safe_dump({"url": url, "username": "u", "token": "t"}))
    env = {**os.environ, "TOLU_CONFIG": str(config)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "runner.site.agent", str(site_dir), "--pid-file"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        log_file = directory.log_path(site_dir)
        # the warning, then several more rounds of every service with the server still down
        wait_until(
            lambda: log_file.read_text() if log_file.exists() else "",
            check=lambda log: "no answer to 10 tries" in log,
            timeout=60,
            what=f"10 failed tries in {log_file}",
        )
        assert directory.running_pid(site_dir) == proc.pid
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out
    log = log_file.read_text()
    assert log.count("unreachable") == 1, log
    assert "Traceback" not in log, log
    assert "site agent stopped" in log
    assert not directory.pid_path(site_dir).exists()
