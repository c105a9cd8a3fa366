"""The server container (ci/server/Dockerfile) run through the docker SDK (harness/container/).

Needs a docker engine (``requires("docker")``; ``./ci/test`` starts one with
ci/provision/docker.sh). The image is built once per source change and reused.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from harness.container.engine import docker_client
from harness.container.errors import ContainerError
from harness.container.image import build_server_image
from harness.container.server import ContainerServer
from harness.waiting import wait_until

pytestmark = [pytest.mark.requires("docker")]


@pytest.fixture(scope="module")
def server_image(tmp_path_factory: pytest.TempPathFactory) -> str:
    log_path = tmp_path_factory.mktemp("image") / "image-build.log"
    return build_server_image(log_path=log_path)


@pytest.fixture
def named_volume() -> Iterator[str]:
    name = f"tolu-test-{uuid.uuid4().hex[:10]}"
    client = docker_client()
    client.volumes.create(name)
    yield name
    client.volumes.get(name).remove(force=True)
    client.close()


def _register_and_login(url: str, username: str, password: str = "correct-horse") -> str:
    r = requests.post(f"{url}/users/register", json={"username": username, "password": password}, timeout=10)
    assert r.status_code == 201, r.text
    return _login(url, username, password)


def _login(url: str, username: str, password: str = "correct-horse") -> str:
    r = requests.post(f"{url}/users/login", json={"username": username, "password": password}, timeout=10)
    assert r.status_code == 200, r.text
    return str(r.json()["access_token"])


def _create_site(url: str, token: str, name: str) -> int:
    r = requests.post(
        f"{url}/sites",
        json={"name": name, "path": f"/sites/{name}", "hostname": "ci"},
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


def _site_names(url: str, token: str) -> list[str]:
    r = requests.get(f"{url}/sites", headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert r.status_code == 200, r.text
    return [s["name"] for s in r.json()["results"]]


def test_container_starts_migrates_and_serves_the_api(server_image: str, tmp_path: Path) -> None:
    with ContainerServer(tmp_path, image=server_image) as server:
        health = requests.get(f"{server.url}/health", timeout=5).json()
        assert health["status"] == "ok"
        assert health["schema_revision"], "migrations were not applied on start"
        assert "sqlite" in health["database"].lower()

        token = _register_and_login(server.url, "alice")
        _create_site(server.url, token, "laptop")
        assert _site_names(server.url, token) == ["laptop"]

        # docker's own HEALTHCHECK agrees, and the server does not run as root
        wait_until(server.health, check=lambda health: health == "healthy", timeout=30, interval=0.5)
        assert server._container is not None
        uid = server._container.exec_run(["id", "-u"]).output.decode().strip()
        assert uid != "0"
        assert server.pid is not None
    # logs were collected on stop
    assert (tmp_path / "server.log").read_text().strip()


def test_data_survives_a_restart_with_a_mounted_volume(
    server_image: str, named_volume: str, tmp_path: Path
) -> None:
    with ContainerServer(tmp_path / "first", image=server_image, volume=named_volume) as first:
        token = _register_and_login(first.url, "bob")
        _create_site(first.url, token, "cluster-a")
    with ContainerServer(tmp_path / "second", image=server_image, volume=named_volume) as second:
        token = _login(second.url, "bob")
        assert _site_names(second.url, token) == ["cluster-a"]


@pytest.mark.requires("postgres")
def test_container_on_postgresql(server_image: str, postgres_url: str, tmp_path: Path) -> None:
    with ContainerServer(tmp_path, image=server_image, database_url=postgres_url) as server:
        health = requests.get(f"{server.url}/health", timeout=5).json()
        assert "postg" in health["database"].lower()
        token = _register_and_login(server.url, f"carol-{uuid.uuid4().hex[:6]}")
        _create_site(server.url, token, "pg-site")


def test_bad_database_url_refuses_to_start_with_a_clear_log_line(server_image: str, tmp_path: Path) -> None:
    bad_url = "postgresql+psycopg://tolu:wrong-password@127.0.0.1:1/nodb"
    server = ContainerServer(tmp_path, image=server_image, database_url=bad_url)
    with pytest.raises(ContainerError) as info:
        server.start(timeout=60)
    assert "exited with code" in str(info.value)
    log = (tmp_path / "server.log").read_text()
    # one line that names the problem: the database, and where it was
    lines = [line for line in log.splitlines() if "tolu server:" in line]
    assert lines, f"no 'tolu server: ...' line in the log:\n{log}"
    assert any("database" in line.lower() for line in lines), lines
    assert "wrong-password" not in log, "the password leaked into the log"
    # nothing is left behind
    client = docker_client()
    assert not client.containers.list(all=True, filters={"name": server.name})
    client.close()


def test_a_container_left_by_a_killed_process_is_removed(server_image: str, tmp_path: Path) -> None:
    """SIGKILL leaves no chance to clean up: the next start() (remove_stale_containers) does it."""
    import signal
    import subprocess
    import sys

    from harness.container.leftovers import remove_stale_containers

    script = (
        "import sys, time\n"
        "from harness.container.server import ContainerServer\n"
        f"s = ContainerServer({str(tmp_path)!r}, image={server_image!r}).start(timeout=120)\n"
        "print(s.name, flush=True)\n"
        "time.sleep(600)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        name = proc.stdout.readline().strip()
        assert name.startswith("tolu-server-"), name
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    client = docker_client()
    try:
        assert client.containers.list(all=True, filters={"name": name}), "the container should still be there"
        assert remove_stale_containers(client) >= 1
        assert not client.containers.list(all=True, filters={"name": name})
        assert not client.volumes.list(filters={"name": f"{name}-data"})
    finally:
        client.close()
