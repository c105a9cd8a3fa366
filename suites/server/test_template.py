"""The deployment template for a facility (tolu ci template): rendered with flags, built, brought
up through the docker SDK (server + PostgreSQL, from the rendered compose.yaml) and checked with
the API smoke tests. Its bring-up time goes into the test's evidence."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import requests
import yaml

from harness.checkout import REPO_ROOT
from harness.container.engine import docker_client
from harness.container.image import build_server_image
from harness.deploy import smoke
from harness.deploy.compose import ComposeProject, read_env_file
from harness.evidence import Evidence
from runner.server.process import free_port
from runner.site.settings import load as load_settings


def template(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "runner.cli.main", "ci", "template", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def postgres_image() -> str:
    """TOLU_POSTGRES_IMAGE when set, else what ci/provision/docker.sh finds or builds (under a lock:
    ci/test builds the same image in the background, and this waits for that build)."""
    if os.environ.get("TOLU_POSTGRES_IMAGE"):
        return os.environ["TOLU_POSTGRES_IMAGE"]
    script = REPO_ROOT / "ci" / "provision" / "docker.sh"
    proc = subprocess.run([str(script), "postgres-image"], capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout.strip().splitlines()[-1]


@pytest.mark.requires("docker")
def test_render_build_bring_up_and_smoke(tmp_path: Path, tolu_evidence: Evidence) -> None:
    facility = f"ci-{uuid.uuid4().hex[:8]}"
    # FROM a tag of our own: a tolu-server build of another checkout on this engine prunes the
    # tolu-server tags it did not make (an image also tagged elsewhere is kept)
    image = f"tolu-template-base:{facility}"
    docker_client().images.get(build_server_image(log_path=tmp_path / "image-build.log")).tag(image)
    pg_image = postgres_image()
    port = free_port()
    out = tmp_path / "deploy"
    rendered = template(
        str(out),
        "--facility", facility,
        "--scheduler", "slurm",
        "--queue", "debug",
        "--project", "CIPROJ",
        "--cpus", "16",
        "--image", image,
        "--postgres-image", pg_image,
        "--port", str(port),
    )  # fmt: skip
    assert rendered.returncode == 0, rendered.stderr

    # the site directory is what tolu's own settings loader accepts, with the flags' values
    settings = load_settings(out / "site")
    assert (settings.name, settings.scheduler.name, settings.launcher.mpi_launcher) == (
        facility,
        "slurm",
        "srun",
    )
    assert (settings.scheduler.default_queue, settings.scheduler.default_project) == ("debug", "CIPROJ")
    assert settings.launcher.node.cpus == 16 and settings.server_url == f"http://127.0.0.1:{port}"
    assert (out / "Dockerfile").read_text().count(f"ARG TOLU_IMAGE={image}") == 1
    assert facility in (out / "README.md").read_text()
    assert oct((out / "server.env").stat().st_mode & 0o777) == "0o600"

    t0 = time.monotonic()
    with ComposeProject(out) as project:
        up_sec = time.monotonic() - t0
        url = project.published_url("server")
        health = requests.get(url + "/health", timeout=10).json()
        assert health["status"] == "ok" and health["database"] == "postgresql"
        result = smoke.run_smoke(url)
        log = smoke.write_log(result, tmp_path / "stepci-results.log")
        server_log = project.logs("server")
        steps = ", ".join(f"{k} at {v:.1f} s" for k, v in project.timeline.items())
    # the facility's image is theirs to keep; a test's is not (vfs stores each in full)
    with contextlib.suppress(Exception):
        docker_client().images.remove(f"tolu-server-{facility}:latest", force=True)
    with contextlib.suppress(Exception):
        docker_client().images.remove(image)  # the tag only: the image is the tested one
    (tmp_path / "bring-up.log").write_text(
        f"bring-up (build FROM {image}, {pg_image} healthy, server healthy): {up_sec:.1f} s ({steps})\n"
        f"smoke: {result.summary()}\n\n--- server log ---\n{server_log}"
    )
    tolu_evidence.add_log("template bring-up", tmp_path / "bring-up.log")
    tolu_evidence.add_log("stepci results", log)
    print(f"template bring-up {up_sec:.1f} s ({steps}); smoke {result.summary()}")
    assert result.ok, "\n\n".join(
        f"{s.test} / {s.name}:\n{s.why()}" for s in result.failures + result.skipped
    )


def test_sqlite_variant_and_bad_flags(tmp_path: Path) -> None:
    out = tmp_path / "lean"
    ok = template(
        str(out), "--facility", "lab", "--scheduler", "pbs", "--database", "sqlite", "--image", "x:1"
    )
    assert ok.returncode == 0, ok.stderr
    compose = yaml.safe_load((out / "compose.yaml").read_text())
    assert set(compose["services"]) == {"server"} and set(compose["volumes"]) == {"server-data"}
    assert "TOLU_DATABASE_URL" not in read_env_file(out / "server.env")
    assert load_settings(out / "site").scheduler.name == "pbs"
    assert load_settings(out / "site").launcher.mpi_launcher == "mpich"

    again = template(str(out), "--facility", "lab", "--scheduler", "pbs", "--image", "x:1")
    assert again.returncode == 1 and "is not empty" in again.stderr
    bad = template(str(tmp_path / "b"), "--facility", "Bad Name", "--scheduler", "slurm", "--image", "x:1")
    assert bad.returncode == 1 and "--facility 'Bad Name'" in bad.stderr and bad.stderr.count("\n") == 1
    bad_launcher = template(
        str(tmp_path / "c"), "--facility", "c", "--scheduler", "slurm", "--image", "x:1", "--cpus", "-1"
    )
    assert bad_launcher.returncode == 1 and "launcher.node.cpus" in bad_launcher.stderr
    assert not (tmp_path / "c").exists()
