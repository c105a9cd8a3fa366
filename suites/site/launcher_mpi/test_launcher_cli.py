"""``tolu launcher`` with settings it cannot use: one line, a non-zero exit, no log file
(issue 16, defect 7: MPI mode printed two lines and left an empty log)."""

from __future__ import annotations

import subprocess
from typing import Any

import pytest

from runner.interpreter import module_command


@pytest.mark.parametrize("mode", ["mpi", "serial"])
def test_bad_launcher_settings_are_one_line(tolu_site: Any, mode: str) -> None:
    tolu_site.write_settings(launcher={"mpi_launcher": "nosuch"})
    logs_before = set((tolu_site.path / "log").glob("*"))
    done = subprocess.run(
        [*module_command("runner.cli.main"), "launcher", "--site", str(tolu_site.path), "--mode", mode],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert done.returncode == 1, done
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error:") and "nosuch" in lines[0], done.stderr
    assert set((tolu_site.path / "log").glob("*")) == logs_before
