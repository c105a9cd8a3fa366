"""A tolu server running in a docker container.

``ContainerServer`` has the interface of :class:`runner.server.process.ServerProcess`
(``start()``, ``url``, ``pid``, ``stop()``, context manager, a log file), so the harness's
``tolu_server`` fixture can use either (``--server container``).

Containers and the volumes made for them are removed on ``stop()``, also when ``start()`` fails or
is interrupted. Each carries the label ``tolu.owner-pid``; containers left behind by a process that
died (SIGKILL) are removed by the next ``start()`` (``harness.container.leftovers``).
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, Self
from urllib.parse import urlsplit

import requests

from harness.container.engine import LABEL, OWNER_LABEL, docker_client
from harness.container.errors import LOG_TAIL_LINES, ContainerError
from harness.container.image import SERVER_DIR, build_server_image
from harness.container.leftovers import remove_stale_containers
from harness.waiting import WaitTimeout, wait_until
from runner.server.process import free_port

CONTAINER_PORT = 8000
_LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}
HEALTH_POLL_SEC = 0.3


class ContainerServer:
    """A tolu server running in a docker container.

    ``data_dir`` is on the host and holds the server log (``server.log``, the container's
    output, written on ``stop()`` and by ``collect_logs()``). The server's own data (SQLite by
    default) lives in a docker volume: ``volume`` names one to keep across containers (it is then
    not removed); without it a fresh volume is made and removed on ``stop()``.

    A ``database_url`` pointing at this machine (127.0.0.1/localhost) makes the container share
    the host network, so the server reaches that database and listens on 127.0.0.1:``port``;
    otherwise the container's port 8000 is published on ``host``:``port``.
    """

    def __init__(
        self,
        data_dir: Path | str,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        database_url: str | None = None,
        log_path: Path | str | None = None,
        env: Mapping[str, str] | None = None,
        image: str | None = None,
        base_image: str | None = None,
        volume: str | None = None,
        migrate: bool = True,
        name: str | None = None,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.host = host
        self.port = port
        self.database_url = database_url
        self.log_path = Path(log_path) if log_path else self.data_dir / "server.log"
        self.env = dict(env or {})
        self.image = image
        self.base_image = base_image
        self.volume = volume
        self.migrate = migrate
        self.name = name or f"tolu-server-{uuid.uuid4().hex[:10]}"
        self._client: Any = None
        self._container: Any = None
        self._own_volume: str | None = None
        self._url: str | None = None

    # -- interface shared with ServerProcess ------------------------------------------------
    @property
    def url(self) -> str:
        if self._url is None:
            raise RuntimeError("server not started")
        return self._url

    @property
    def pid(self) -> int | None:
        """The PID (on the host) of the server process in the container."""
        if self._container is None:
            return None
        self._container.reload()
        pid = int(self._container.attrs.get("State", {}).get("Pid") or 0)
        return pid or None

    @property
    def container_id(self) -> str | None:
        return None if self._container is None else str(self._container.id)

    def start(self, timeout: float = 60) -> Self:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._client = self._client or docker_client()
        remove_stale_containers(self._client)
        try:
            self.image = self.image or build_server_image(
                base_image=self.base_image, client=self._client, log_path=self.data_dir / "image-build.log"
            )
            self._run_container()
            self._wait_healthy(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self, timeout: float = 10) -> None:
        """Collect the logs, stop and remove the container (and the volume made for it)."""
        if self._container is not None:
            with contextlib.suppress(Exception):
                self._container.stop(timeout=int(timeout))
            self.collect_logs()
            with contextlib.suppress(Exception):
                self._container.remove(force=True, v=True)
            self._container = None
        if self._own_volume is not None and self._client is not None:
            with contextlib.suppress(Exception):
                self._client.volumes.get(self._own_volume).remove(force=True)
            self._own_volume = None
        if self._client is not None:
            with contextlib.suppress(Exception):
                self._client.close()
            self._client = None
        self._url = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # -- container specifics ------------------------------------------------------------------
    def logs(self) -> str:
        """The container's output so far (stdout + stderr)."""
        if self._container is None:
            return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        raw = self._container.logs(stdout=True, stderr=True)
        return bytes(raw).decode(errors="replace")

    def collect_logs(self) -> Path:
        """Write the container's output to ``log_path``; return it."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(Exception):
            self.log_path.write_text(self.logs())
        return self.log_path

    def health(self) -> str | None:
        """docker's health status: starting, healthy, unhealthy (None before start)."""
        if self._container is None:
            return None
        self._container.reload()
        return self._container.attrs.get("State", {}).get("Health", {}).get("Status")

    def _logs_tail(self) -> str:
        return "\n".join(self.logs().splitlines()[-LOG_TAIL_LINES:])

    def _run_container(self) -> None:
        environment = {"TOLU_MIGRATE": "1" if self.migrate else "0"}
        if self.database_url:
            environment["TOLU_DATABASE_URL"] = self.database_url
        environment.update(self.env)
        volume = self.volume
        if volume is None:
            volume = self._own_volume = f"{self.name}-data"
            self._client.volumes.create(volume, labels={LABEL: "volume", OWNER_LABEL: str(os.getpid())})
        kwargs: dict[str, Any] = {
            "name": self.name,
            "detach": True,
            "environment": environment,
            "volumes": {volume: {"bind": "/data", "mode": "rw"}},
            "labels": {LABEL: "server", OWNER_LABEL: str(os.getpid())},
        }
        db_host = urlsplit(self.database_url).hostname if self.database_url else None
        if db_host in _LOCAL_HOSTS:
            # the database listens on the host's loopback: share the host network
            port = self.port or free_port("127.0.0.1")
            environment["TOLU_PORT"] = str(port)
            environment["TOLU_HOST"] = "127.0.0.1"
            kwargs["network_mode"] = "host"
            self._container = self._client.containers.run(self.image, **kwargs)
            self._url = f"http://127.0.0.1:{port}"
            return
        kwargs["ports"] = {f"{CONTAINER_PORT}/tcp": (self.host, self.port or None)}
        self._container = self._client.containers.run(self.image, **kwargs)
        self._container.reload()
        bindings = self._container.attrs["NetworkSettings"]["Ports"].get(f"{CONTAINER_PORT}/tcp") or []
        if not bindings:
            raise ContainerError("container has no published port", log_tail=self.logs()[-3000:])
        self.port = int(bindings[0]["HostPort"])
        self._url = f"http://{self.host}:{self.port}"

    def _wait_healthy(self, timeout: float) -> None:
        try:
            wait_until(
                self._health_answer,
                check=lambda answer: answer == "ok",
                timeout=timeout,
                interval=HEALTH_POLL_SEC,
                what=f"{self._url}/health",
            )
        except WaitTimeout as exc:
            self.collect_logs()
            raise ContainerError(
                f"server container {self.name} not healthy within {timeout:.0f} s ({exc.last})",
                log_tail=self._logs_tail(),
                log_path=self.log_path,
            ) from None

    def _health_answer(self) -> str:
        """``ok``, or why not yet (HTTP status, connection error); raises if the container ended."""
        self._container.reload()
        status = self._container.status
        if status in {"exited", "dead"}:
            code = self._container.attrs.get("State", {}).get("ExitCode")
            self.collect_logs()
            hint = ""
            if "ModuleNotFoundError" in self.logs():
                hint = f"; add the missing module to {SERVER_DIR / 'requirements.txt'}"
            raise ContainerError(
                f"server container {self.name} exited with code {code} before it was healthy{hint}",
                log_tail=self._logs_tail(),
                log_path=self.log_path,
            )
        try:
            response = requests.get(f"{self._url}/health", timeout=2)
            return "ok" if response.status_code == 200 else f"HTTP {response.status_code}"
        except requests.RequestException as exc:
            return type(exc).__name__
