"""Generic import names do not bite: started from a working directory that holds
packages called ``runner`` and ``harness``, every process tolu starts imports this tolu.

The server (``tolu server up``), the site agent (``tolu site start``), launchers in MPI
and serial mode (their ``mpiexec``-started ranks) and python-function jobs (whose own
workdir holds the same packages, and a module they import) all start from there and
jobs finish. pytest's own
``sys.path`` does not matter here: every process checked is a child started in that
directory, and a plain ``python -m`` from it is shown to break first.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from harness.evidence import Evidence
from runner.apps import job_result
from runner.client import Client
from runner.launcher.process import LauncherProcess
from runner.site import directory
from runner.states import JobState

#: a package that takes the place of tolu's if Python looks in the working directory.
FOREIGN = 'raise ImportError("foreign")\n'
#: the ``tolu`` console script beside this Python: how users start tolu.
TOLU = str(Path(sys.executable).parent / "tolu")
MODES = ("mpi", "serial")

CAT_APP = "name: cat\ncommand_template: cat in.txt\n"
WHERE_APP = '''\
"""Where a python-function job ran, as the job sees it."""
import os
from pathlib import Path

from runner.apps import python_app


@python_app
def where() -> dict:
    import workdir_helper  # a module beside the job, in its workdir

    parent = Path(f"/proc/{os.getppid()}")
    grandparent = Path(f"/proc/{(parent / 'stat').read_text().rsplit(')', 1)[1].split()[1]}")
    return {
        "helper": workdir_helper.WHERE,
        "input": Path("in.txt").read_text(),
        "parent_argv": (parent / "cmdline").read_bytes().decode().split("\\0"),
        "grandparent_cwd": os.readlink(grandparent / "cwd"),
        "grandparent_argv": (grandparent / "cmdline").read_bytes().decode().split("\\0"),
    }
'''


def plant_foreign_packages(folder: Path) -> Path:
    for name in ("runner", "harness"):
        (folder / name).mkdir(parents=True)
        (folder / name / "__init__.py").write_text(FOREIGN)
    return folder


def tolu(*args: str) -> str:
    done = subprocess.run([TOLU, *args], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, f"tolu {' '.join(args)}: exit {done.returncode}\n{done.stdout}{done.stderr}"
    return done.stdout


def cwd_of(pid: int) -> Path:
    return Path(os.readlink(f"/proc/{pid}/cwd"))


@pytest.fixture
def foreign_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The working directory of this test and of every process it starts."""
    folder = plant_foreign_packages(tmp_path / "work")
    monkeypatch.chdir(folder)
    return folder


@pytest.fixture
def server_url(foreign_cwd: Path, tmp_path: Path, tolu_evidence: Evidence) -> Iterator[str]:
    data_dir = tmp_path / "server"
    tolu("server", "up", "--detach", "--port", "0", "--data-dir", str(data_dir))
    try:
        info = json.loads((data_dir / "server.pid").read_text())
        assert cwd_of(info["pid"]) == foreign_cwd
        tolu_evidence.add_server(
            url=info["url"], database="sqlite", mode="process", log_path=Path(info["log"])
        )
        yield str(info["url"])
    finally:
        tolu("server", "down", "--data-dir", str(data_dir))


@pytest.fixture
def user(server_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tolu_evidence: Evidence) -> Client:
    password = secrets.token_urlsafe(16)
    Client.register(server_url, "import-names", password)
    client = Client.login(server_url, "import-names", password)
    monkeypatch.setenv("TOLU_CONFIG", str(client.save_config(tmp_path / "credentials.yaml")))
    tolu_evidence.add_client(client)
    return client


def test_a_plain_python_m_there_imports_the_foreign_packages(foreign_cwd: Path) -> None:
    """The trap is real: what the test below survives breaks a plain ``python -m``."""
    for argv in (["-m", "runner.server", "--help"], ["-c", "import harness"]):
        done = subprocess.run([sys.executable, *argv], capture_output=True, text=True, check=False)
        assert done.returncode != 0 and "ImportError: foreign" in done.stderr, (argv, done.stderr)


@pytest.mark.requires("mpi")
def test_server_agent_and_launchers_run_jobs_from_a_directory_with_foreign_packages(
    foreign_cwd: Path,
    user: Client,
    tmp_path: Path,
    tolu_evidence: Evidence,
    wait_for_jobs: Callable[..., Any],
) -> None:
    site_dir = tmp_path / "site"
    tolu("site", "init", str(site_dir), "--name", "import-names", "--scheduler", "local")
    tolu_evidence.add_site(site_dir)
    settings = yaml.safe_load((site_dir / "settings.yml").read_text())
    settings["services"] = ["processing", "transfer"]  # the agent stages every job in
    settings["processing"]["poll_interval_sec"] = 0.5
    settings["transfer"]["poll_interval_sec"] = 0.2
    settings["launcher"].update(mpi_launcher="mpich", heartbeat_sec=1.0, report_interval_sec=0.2)
    (site_dir / "settings.yml").write_text(yaml.safe_dump(settings, sort_keys=False))
    (site_dir / "apps" / "cat.yml").write_text(CAT_APP)
    (site_dir / "apps" / "where.py").write_text(WHERE_APP)
    tolu("app", "sync", "--site", str(site_dir))
    apps = {app.name: app for app in user.apps.filter(site_id=settings["site_id"])}

    payload = secrets.token_hex(8)
    remote = tmp_path / "remote"
    remote.mkdir()
    (remote / "in.txt").write_text(payload)
    stage_in = [{"direction": "in", "source": f"local:{remote}/in.txt", "destination": "in.txt"}]
    specs: list[dict[str, Any]] = []
    for mode in MODES:
        specs.append({"app_id": apps["cat"].id, "tags": {"mode": mode}, "transfers": stage_in})
        # the python function's own workdir holds the foreign packages too, and a module
        # of its own that it imports
        workdir = plant_foreign_packages(site_dir / "data" / mode / "where")
        (workdir / "workdir_helper.py").write_text("WHERE = 'the workdir'\n")
        specs.append(
            {
                "app_id": apps["where"].id,
                "tags": {"mode": mode},
                "transfers": stage_in,
                "workdir": f"{mode}/where",
            }
        )

    tolu("site", "start", str(site_dir))
    try:
        agent_pid = directory.running_pid(site_dir)
        assert agent_pid is not None and cwd_of(agent_pid) == foreign_cwd
        jobs = user.jobs.bulk_create(specs)
        wait_for_jobs(user, jobs, [JobState.PREPROCESSED], timeout=120)
        for mode in MODES:
            launcher = LauncherProcess(site_dir, mode, max_idle_sec=3, tags={"mode": mode}).start()
            assert cwd_of(launcher.pid) == foreign_cwd
            try:
                code = launcher.wait(timeout=180)
            finally:
                launcher.stop()
            assert code == 0, launcher.console_tail()
        done = {job.id: job for job in wait_for_jobs(user, jobs, [JobState.JOB_FINISHED], timeout=120)}
    finally:
        tolu("site", "stop", str(site_dir))

    for spec, job in zip(specs, jobs, strict=True):
        finished = done[job.id]
        if spec["app_id"] == apps["cat"].id:
            assert (site_dir / "data" / finished.workdir / "job.out").read_text() == payload
            continue
        seen = job_result(finished)
        assert (seen["input"], seen["helper"]) == (payload, "the workdir")
        if finished.tags["mode"] == "serial":
            # the parent is a spawner (python -P: its imports never see a workdir; it moves
            # into each task's workdir only to start it, posix_spawn having no chdir), and
            # its parent the serial-mode rank mpiexec started, in the foreign directory
            assert seen["parent_argv"][1:4] == ["-P", "-m", "runner.launcher.spawner"], seen
            assert seen["grandparent_cwd"] == str(foreign_cwd), seen
            assert seen["grandparent_argv"][1:4] == ["-P", "-m", "runner.launcher.serial_mode"], seen
