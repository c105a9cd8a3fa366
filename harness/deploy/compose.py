"""Bring up a rendered deployment template's ``compose.yaml`` through the docker SDK.

Docker Compose may not be installed where tolu is tested, and the template's compose file
uses a small part of it: services with ``image`` or ``build: .``, ``environment`` (with
``${VAR}`` from ``.env``), ``env_file``, ``depends_on`` with ``condition: service_healthy``,
``ports`` (``host-ip:port:port``), named ``volumes``, ``healthcheck`` and ``restart``. This
module does exactly that part, the way Compose does it (a network named ``<project>_default``
where each service is reachable by its name, volumes ``<project>_<name>``), and refuses any
key it does not know, so the template and this bring-up cannot drift apart silently.

Everything it makes carries tolu's labels (``harness.container.engine``), so what a killed
test leaves behind is removed by the next container start.
"""

from __future__ import annotations

import contextlib
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import yaml

from harness.container.engine import LABEL, OWNER_LABEL, docker_client
from harness.container.errors import ContainerError
from harness.container.image import build_lock

SERVICE_KEYS = {
    "image",
    "build",
    "environment",
    "env_file",
    "depends_on",
    "ports",
    "volumes",
    "healthcheck",
    "restart",
}
POLL_SEC = 0.5
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def read_env_file(path: Path) -> dict[str, str]:
    """``KEY=value`` lines; ``#`` comments and blank lines skipped (Compose's env-file format)."""
    out: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, value = line.split("=", 1)
            out[key.strip()] = value.strip()
    return out


def _duration_ns(value: str | int | float) -> int:
    if isinstance(value, int | float):
        return int(value * 1e9)
    match = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s|m)", value.strip())
    if not match:
        raise ContainerError(f"compose: cannot read the duration {value!r}")
    return int(float(match[1]) * {"ms": 1e6, "s": 1e9, "m": 60e9}[match[2]])


@dataclass
class Service:
    name: str
    spec: dict[str, Any]
    container: Any = None
    #: the container's output, kept when it is removed
    last_logs: str = ""


@dataclass
class ComposeProject:
    """The services of ``directory/compose.yaml``; ``up()`` starts them in dependency order."""

    directory: Path
    #: extra build arguments for ``build: .`` services (e.g. TOLU_IMAGE)
    build_args: dict[str, str] = field(default_factory=dict)
    name: str = ""
    services: dict[str, Service] = field(default_factory=dict)
    volumes: list[str] = field(default_factory=list)
    #: seconds since ``up()`` began when each step ended: "build server", "db healthy", ...
    timeline: dict[str, float] = field(default_factory=dict)
    _client: Any = None
    _network: Any = None
    _made_volumes: list[Any] = field(default_factory=list)
    _t0: float = 0.0

    def __post_init__(self) -> None:
        doc = yaml.safe_load((self.directory / "compose.yaml").read_text()) or {}
        unknown_top = set(doc) - {"name", "services", "volumes"}
        if unknown_top:
            raise ContainerError(f"compose.yaml: keys this bring-up does not do: {sorted(unknown_top)}")
        self.name = self.name or str(doc.get("name") or self.directory.name)
        dotenv = self.directory / ".env"
        self._vars = {**os.environ, **(read_env_file(dotenv) if dotenv.is_file() else {})}
        for name, spec in (doc.get("services") or {}).items():
            unknown = set(spec) - SERVICE_KEYS
            if unknown:
                raise ContainerError(
                    f"compose.yaml: service {name}: keys this bring-up does not do: {sorted(unknown)}"
                )
            self.services[name] = Service(name, spec)
        self.volumes = list(doc.get("volumes") or {})

    # ---- lifecycle
    def up(self, timeout: float = 300) -> Self:
        """Build, create the network and volumes, start each service once its dependencies are
        healthy; return when every service with a health check is healthy."""
        self._client = self._client or docker_client()
        labels = {LABEL: "compose", OWNER_LABEL: str(os.getpid())}
        try:
            self._network = self._client.networks.create(f"{self.name}_default", labels=labels)
            for vol in self.volumes:
                self._made_volumes.append(self._client.volumes.create(f"{self.name}_{vol}", labels=labels))
            self._t0 = time.monotonic()
            deadline = self._t0 + timeout
            for service in self._ordered():
                for dep in self._dependencies(service):
                    self._wait_healthy(self.services[dep], deadline)
                self._start(service, labels)
            for service in self.services.values():
                if self._has_healthcheck(service):
                    self._wait_healthy(service, deadline)
        except BaseException:
            self.down()
            raise
        return self

    def down(self) -> None:
        """Stop and remove the containers, the network and the volumes (logs kept in ``logs()``)."""
        for service in reversed(list(self.services.values())):
            if service.container is not None:
                with contextlib.suppress(Exception):
                    service.last_logs = self.logs(service.name)
                with contextlib.suppress(Exception):
                    service.container.remove(force=True, v=True)
                service.container = None
        if self._network is not None:
            with contextlib.suppress(Exception):
                self._network.remove()
            self._network = None
        for vol in self._made_volumes:
            with contextlib.suppress(Exception):
                vol.remove(force=True)
        self._made_volumes = []
        if self._client is not None:
            with contextlib.suppress(Exception):
                self._client.close()
            self._client = None

    def __enter__(self) -> Self:
        return self.up()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.down()

    def logs(self, service: str) -> str:
        svc = self.services[service]
        if svc.container is None:
            return svc.last_logs
        return bytes(svc.container.logs(stdout=True, stderr=True)).decode(errors="replace")

    def published_url(self, service: str, container_port: int = 8000) -> str:
        """``http://host:port`` of a service's published port."""
        for entry in self.services[service].spec.get("ports") or []:
            host_ip, host_port, port = _port(str(entry))
            if port == container_port:
                return f"http://{host_ip or '127.0.0.1'}:{host_port}"
        raise ContainerError(f"service {service} publishes no port {container_port}")

    # ---- one service
    def _start(self, service: Service, labels: dict[str, str]) -> None:
        spec = service.spec
        image = spec.get("image")
        if "build" in spec:
            context = self.directory / str(spec["build"])
            image = image or f"{self.name}-{service.name}"
            self._build(context, str(image), labels)
            self.timeline[f"build {service.name}"] = time.monotonic() - self._t0
        if not image:
            raise ContainerError(f"compose.yaml: service {service.name} has neither image nor build")
        environment: dict[str, str] = {}
        if "env_file" in spec:
            for env_file in [spec["env_file"]] if isinstance(spec["env_file"], str) else spec["env_file"]:
                environment.update(read_env_file(self.directory / env_file))
        for key, value in (spec.get("environment") or {}).items():
            environment[str(key)] = self._substitute(str(value))
        ports: dict[str, tuple[str, int]] = {}
        for entry in spec.get("ports") or []:
            host_ip, host_port, port = _port(str(entry))
            ports[f"{port}/tcp"] = (host_ip, host_port)
        volumes = {}
        for entry in spec.get("volumes") or []:
            source, target = str(entry).split(":", 1)
            volumes[f"{self.name}_{source}"] = {"bind": target, "mode": "rw"}
        kwargs: dict[str, Any] = {
            "name": f"{self.name}-{service.name}-1",
            "detach": True,
            "environment": environment,
            "ports": ports,
            "volumes": volumes,
            "labels": labels,
            "network": self._network.name,
            # reachable by its service name on the project's network, as Compose does
            "networking_config": {
                self._network.name: self._client.api.create_endpoint_config(aliases=[service.name])
            },
        }
        if "healthcheck" in spec:
            hc = spec["healthcheck"]
            kwargs["healthcheck"] = {
                "test": hc["test"],
                "interval": _duration_ns(hc.get("interval", "30s")),
                "timeout": _duration_ns(hc.get("timeout", "30s")),
                "retries": int(hc.get("retries", 3)),
            }
        container = self._client.containers.create(str(image), **kwargs)
        container.start()
        service.container = container

    def _build(self, context: Path, tag: str, labels: dict[str, str]) -> None:
        import docker.errors

        try:
            with build_lock():  # a concurrent tolu image build prunes dangling images under ours
                self._client.images.build(
                    path=str(context),
                    tag=tag,
                    buildargs=self.build_args,
                    labels={LABEL: "compose"},
                    rm=True,
                    forcerm=True,
                )
        except docker.errors.BuildError as exc:
            lines = "".join(str(c.get("stream") or c.get("error") or "") for c in exc.build_log)
            raise ContainerError(
                f"docker build of {context} failed: {exc.msg}", log_tail=lines[-3000:]
            ) from exc

    def _wait_healthy(self, service: Service, deadline: float) -> None:
        container = service.container
        if container is None:
            raise ContainerError(f"service {service.name} was not started")
        while True:
            container.reload()
            state = container.attrs.get("State", {})
            if state.get("Status") in ("exited", "dead"):
                raise ContainerError(
                    f"service {service.name} exited with code {state.get('ExitCode')}",
                    log_tail=self.logs(service.name)[-3000:],
                )
            health = (state.get("Health") or {}).get("Status")
            if health == "healthy" or (health is None and not self._has_healthcheck(service)):
                self.timeline.setdefault(f"{service.name} healthy", time.monotonic() - self._t0)
                return
            if time.monotonic() > deadline:
                raise ContainerError(
                    f"service {service.name} not healthy in time ({health})",
                    log_tail=self.logs(service.name)[-3000:],
                )
            time.sleep(POLL_SEC)

    # ---- helpers
    def _has_healthcheck(self, service: Service) -> bool:
        if "healthcheck" in service.spec:
            return True
        if service.container is None:
            return False
        service.container.reload()
        return bool(service.container.attrs.get("Config", {}).get("Healthcheck"))

    def _dependencies(self, service: Service) -> list[str]:
        deps = service.spec.get("depends_on") or {}
        if isinstance(deps, list):
            return [str(d) for d in deps]
        for dep, cond in deps.items():
            if (cond or {}).get("condition", "service_started") not in ("service_started", "service_healthy"):
                raise ContainerError(
                    f"compose.yaml: {service.name}.depends_on.{dep}: unsupported condition {cond}"
                )
        return [str(d) for d in deps]

    def _ordered(self) -> list[Service]:
        done: list[str] = []

        def visit(name: str, path: tuple[str, ...]) -> None:
            if name in done:
                return
            if name in path:
                raise ContainerError(f"compose.yaml: dependency cycle {' -> '.join((*path, name))}")
            for dep in self._dependencies(self.services[name]):
                visit(dep, (*path, name))
            done.append(name)

        for name in self.services:
            visit(name, ())
        return [self.services[n] for n in done]

    def _substitute(self, value: str) -> str:
        def one(match: re.Match[str]) -> str:
            if match[1] not in self._vars:
                raise ContainerError(f"compose.yaml: ${{{match[1]}}} is not set (.env or the environment)")
            return str(self._vars[match[1]])

        return _VAR.sub(one, value)


def _port(entry: str) -> tuple[str, int, int]:
    """``127.0.0.1:8080:8000`` -> ("127.0.0.1", 8080, 8000); ``8080:8000`` binds every address."""
    parts = entry.split(":")
    if len(parts) == 3:
        return parts[0], int(parts[1]), int(parts[2])
    if len(parts) == 2:
        return "", int(parts[0]), int(parts[1])
    raise ContainerError(f"compose.yaml: cannot read the port {entry!r}")
