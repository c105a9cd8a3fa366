"""The tolu server as a docker container, driven through the docker SDK.

``ContainerServer`` has the interface of :class:`runner.server.process.ServerProcess`
(``start()``, ``url``, ``pid``, ``stop()``, context manager, a log file), so the harness's
``tolu_server`` fixture can use either (``--server container``).

The image comes from ``ci/server/Dockerfile`` and is tagged by a digest of everything that goes
into it (sources, server requirements, Dockerfile, base image), so it is built once per change and
reused afterwards. The build context is a wheelhouse made on the host (``pip wheel``), installed in
the image with ``--no-index``: no network is needed inside the build.

Containers and the volumes made for them are removed on ``stop()``, also when ``start()`` fails or
is interrupted. Each carries the label ``tolu.owner-pid``; containers left behind by a process that
died (SIGKILL) are removed by the next ``start()``.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib.metadata
import logging
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
import zipfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, Self
from urllib.parse import urlsplit

import requests

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[1]
SERVER_DIR = REPO_ROOT / "ci" / "server"
IMAGE_REPO = "tolu-server"
DEPS_REPO = "tolu-server-deps"
UPSTREAM_BASE = "python:3.11-slim"
LOCAL_BASE = "local/debian-python:bookworm"
CONTAINER_PORT = 8000
LABEL = "tolu.server"
OWNER_LABEL = "tolu.owner-pid"
_LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}


class ContainerError(RuntimeError):
    """The server image could not be built, or the container did not become healthy.

    ``log_tail`` carries the last lines of the build or container log.
    """

    def __init__(self, message: str, *, log_tail: str = "", log_path: Path | None = None) -> None:
        details = message
        if log_path is not None:
            details += f" (log: {log_path})"
        if log_tail:
            details += "\n--- last log lines ---\n" + log_tail
        super().__init__(details)
        self.log_tail = log_tail
        self.log_path = log_path


def docker_client() -> Any:
    """A docker SDK client for the engine in the environment (DOCKER_HOST or the local socket)."""
    import docker  # imported lazily: the harness works without a docker engine

    client = docker.from_env(timeout=120)
    client.ping()
    return client


def docker_available() -> bool:
    try:
        docker_client().close()
    except Exception:
        return False
    return True


# ----------------------------------------------------------------------------- image


def default_base_image(client: Any) -> str:
    """TOLU_SERVER_BASE_IMAGE, else python:3.11-slim if present, else the local Debian image if
    present, else python:3.11-slim (the engine will try to pull it)."""
    env = os.environ.get("TOLU_SERVER_BASE_IMAGE")
    if env:
        return env
    for candidate in (UPSTREAM_BASE, LOCAL_BASE):
        if _image_exists(client, candidate):
            return candidate
    return UPSTREAM_BASE


def _image_exists(client: Any, tag: str) -> bool:
    import docker.errors

    try:
        client.images.get(tag)
    except docker.errors.ImageNotFound:
        return False
    return True


def _source_files(root: Path) -> list[Path]:
    files: list[Path] = []
    for package in ("runner",):  # the image holds runner/ only (harness/ is removed from it)
        for path in sorted((root / package).rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts and path.suffix not in {".pyc", ".pyo"}:
                files.append(path)
    files += [root / "pyproject.toml", SERVER_DIR / "Dockerfile", SERVER_DIR / "entrypoint.sh"]
    return files


def _digest(*parts: str | bytes) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(part.encode() if isinstance(part, str) else part)
        h.update(b"\0")
    return h.hexdigest()[:16]


def deps_digest(base_image: str) -> str:
    """Digest of the dependency image: base image, pinned requirements, deps.Dockerfile."""
    dockerfile = (SERVER_DIR / "deps.Dockerfile").read_bytes()
    return _digest(base_image, "\n".join(_pinned_requirements()), dockerfile)


def image_digest(deps_tag: str, root: Path = REPO_ROOT) -> str:
    """Digest of the server image: its dependency image and every source file that goes in."""
    parts: list[str | bytes] = [deps_tag]
    for path in _source_files(root):
        parts += [str(path.relative_to(root)), path.read_bytes()]
    return _digest(*parts)


def _pinned_requirements() -> list[str]:
    """ci/server/requirements.txt, pinned to the versions installed here (the tested ones)."""
    installed = {
        re.sub(r"[-_.]+", "-", (d.metadata["Name"] or "").lower()): d.version
        for d in importlib.metadata.distributions()
    }
    pinned = []
    for line in (SERVER_DIR / "requirements.txt").read_text().splitlines():
        req = line.split("#", 1)[0].strip()
        if not req:
            continue
        name = re.sub(r"[-_.]+", "-", re.split(r"[\[<>=!~ ;]", req, maxsplit=1)[0].lower())
        version = installed.get(name)
        pinned.append(f"{req}=={version}" if version and not re.search(r"[<>=!~]", req) else req)
    return pinned


def _run(cmd: list[str], log_file: Path) -> None:
    with log_file.open("a") as out:
        out.write("$ " + " ".join(cmd) + "\n")
        out.flush()
        proc = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, check=False)
    if proc.returncode != 0:
        raise ContainerError(
            f"{' '.join(cmd[:5])} ... exited {proc.returncode}", log_tail=_tail(log_file), log_path=log_file
        )


def _constraints() -> str:
    lines = []
    for d in importlib.metadata.distributions():
        name = d.metadata["Name"]
        if name and name.lower() != "tolu":
            lines.append(f"{name}=={d.version}")
    return "\n".join(sorted(set(lines))) + "\n"


@contextlib.contextmanager
def _build_lock() -> Iterator[None]:
    """One image build at a time on this machine (pytest-xdist workers share the engine)."""
    lock_path = Path(tempfile.gettempdir()) / "tolu-server-image.lock"
    with lock_path.open("w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def build_server_image(
    *, base_image: str | None = None, client: Any = None, log_path: Path | None = None, force: bool = False
) -> str:
    """Build (or reuse) the server image; return its tag ``tolu-server:<digest>``.

    Two images: ``tolu-server-deps:<digest>`` (a venv with ci/server/requirements.txt, pinned to
    the versions installed in this environment, from a host-made wheelhouse) changes rarely;
    ``tolu-server:<digest>`` adds tolu itself (its wheel, unpacked on the host) in one layer.
    """
    if not (SERVER_DIR / "Dockerfile").is_file():
        raise ContainerError(
            f"{SERVER_DIR}/Dockerfile not found: server images are built from a source checkout"
        )
    own_client = client is None
    client = client or docker_client()
    try:
        base = base_image or default_base_image(client)
        log_file = log_path or Path(tempfile.gettempdir()) / f"tolu-image-build-{os.getpid()}.log"
        log_file.parent.mkdir(parents=True, exist_ok=True)
        with _build_lock():
            deps_tag = f"{DEPS_REPO}:{deps_digest(base)}"
            if force or not _image_exists(client, deps_tag):
                _build_deps_image(client, base, deps_tag, log_file)
            tag = f"{IMAGE_REPO}:{image_digest(deps_tag)}"
            if force or not _image_exists(client, tag):
                _build_app_image(client, deps_tag, tag, log_file)
                _prune_images(client, keep={tag, deps_tag})
            return tag
    finally:
        if own_client:
            client.close()


def _build_deps_image(client: Any, base: str, tag: str, log_file: Path) -> None:
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="tolu-deps-") as tmp:
        ctx = Path(tmp)
        wheels = ctx / "wheels"
        wheels.mkdir()
        (ctx / "constraints.txt").write_text(_constraints())
        (wheels / "requirements.txt").write_text("\n".join(_pinned_requirements()) + "\n")
        requirements = ["-c", str(ctx / "constraints.txt"), "-r", str(wheels / "requirements.txt")]
        pip_wheel = [sys.executable, "-m", "pip", "wheel", "-q", "--wheel-dir", str(wheels)]
        _run([*pip_wheel, *requirements], log_file)
        shutil.copy(SERVER_DIR / "deps.Dockerfile", ctx / "Dockerfile")
        (ctx / "constraints.txt").unlink()
        _docker_build(client, ctx, tag, {"BASE_IMAGE": base}, log_file)
    log.info("built %s from %s in %.0f s", tag, base, time.monotonic() - t0)


def _build_app_image(client: Any, deps_tag: str, tag: str, log_file: Path) -> None:
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="tolu-app-") as tmp:
        ctx = Path(tmp)
        dist = ctx / "dist"
        app = ctx / "app"
        _run(
            [
                sys.executable,
                "-m",
                "pip",
                "wheel",
                "-q",
                "--no-deps",
                "--wheel-dir",
                str(dist),
                str(REPO_ROOT),
            ],
            log_file,
        )
        wheel = next(dist.glob("tolu-*.whl"))
        with zipfile.ZipFile(wheel) as zf:
            zf.extractall(app)
        shutil.rmtree(dist)
        # the test harness is not part of the server
        shutil.rmtree(app / "harness", ignore_errors=True)
        # byte-compile here: the server user cannot write __pycache__ in the image
        _run(
            [sys.executable, "-m", "compileall", "-q", "--invalidation-mode", "unchecked-hash", str(app)],
            log_file,
        )
        entrypoint = app / "tolu-server-entrypoint"
        shutil.copy(SERVER_DIR / "entrypoint.sh", entrypoint)
        entrypoint.chmod(0o755)
        shutil.copy(SERVER_DIR / "Dockerfile", ctx / "Dockerfile")
        _docker_build(client, ctx, tag, {"DEPS_IMAGE": deps_tag}, log_file)
    log.info("built %s in %.0f s", tag, time.monotonic() - t0)


def _docker_build(client: Any, ctx: Path, tag: str, buildargs: dict[str, str], log_file: Path) -> None:
    import docker.errors

    try:
        _image, chunks = client.images.build(
            path=str(ctx),
            tag=tag,
            buildargs=buildargs,
            rm=True,
            forcerm=True,
            labels={LABEL: "image"},
        )
        with log_file.open("a") as out:
            for chunk in chunks:
                if "stream" in chunk:
                    out.write(str(chunk["stream"]))
    except docker.errors.BuildError as exc:
        with log_file.open("a") as out:
            for chunk in exc.build_log:
                out.write(str(chunk.get("stream") or chunk.get("error") or ""))
        raise ContainerError(
            f"docker build of {tag} failed: {exc.msg}", log_tail=_tail(log_file), log_path=log_file
        ) from exc
    finally:
        # a multi-stage build leaves its build stage behind as a dangling image; vfs stores it in full
        with contextlib.suppress(Exception):
            client.images.prune(filters={"dangling": True})


def _prune_images(client: Any, keep: set[str]) -> None:
    """Remove older tolu-server images (in use ones stay: docker refuses to remove them)."""
    for image in client.images.list(filters={"label": LABEL}):
        tags = set(image.tags)
        if tags and not tags & keep and all(t.split(":")[0] in {IMAGE_REPO, DEPS_REPO} for t in tags):
            for t in tags:
                with contextlib.suppress(Exception):
                    client.images.remove(t)


# ----------------------------------------------------------------------------- container


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def remove_stale_containers(client: Any) -> int:
    """Remove tolu server containers (and the volumes made for them) whose owning process is
    gone; return how many."""
    removed = 0
    for container in client.containers.list(all=True, filters={"label": OWNER_LABEL}):
        try:
            owner = int(container.labels.get(OWNER_LABEL, "0"))
        except ValueError:
            continue
        if owner and not _pid_alive(owner):
            with contextlib.suppress(Exception):
                container.remove(force=True, v=True)
                removed += 1
    for volume in client.volumes.list(filters={"label": OWNER_LABEL}):
        try:
            owner = int((volume.attrs.get("Labels") or {}).get(OWNER_LABEL, "0"))
        except ValueError:
            continue
        if owner and not _pid_alive(owner):
            with contextlib.suppress(Exception):  # a volume still in use is refused by docker
                volume.remove()
                removed += 1
    return removed


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


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
        secret_key: str | None = None,
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
        self.secret_key = secret_key or uuid.uuid4().hex + uuid.uuid4().hex
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

    def _run_container(self) -> None:
        environment = {"TOLU_SECRET_KEY": self.secret_key, "TOLU_MIGRATE": "1" if self.migrate else "0"}
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
            port = self.port or _free_port("127.0.0.1")
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
        deadline = time.monotonic() + timeout
        last_error = ""
        while time.monotonic() < deadline:
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
                    log_tail="\n".join(self.logs().splitlines()[-30:]),
                    log_path=self.log_path,
                )
            try:
                response = requests.get(f"{self._url}/health", timeout=2)
                if response.status_code == 200:
                    return
                last_error = f"HTTP {response.status_code}"
            except requests.RequestException as exc:
                last_error = type(exc).__name__
            time.sleep(0.3)
        self.collect_logs()
        raise ContainerError(
            f"server container {self.name} not healthy within {timeout:.0f} s ({last_error})",
            log_tail="\n".join(self.logs().splitlines()[-30:]),
            log_path=self.log_path,
        )
