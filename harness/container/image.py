"""The server image, built from ``ci/server/`` and tagged by a digest of what goes into it.

Two images: ``tolu-server-deps:<digest>`` (a venv with ci/server/requirements.txt, pinned to
the versions installed in this environment) changes rarely; ``tolu-server:<digest>`` adds tolu
itself (its wheel, unpacked on the host) in one layer. The build context is a wheelhouse made on
the host (``pip wheel``), installed in the image with ``--no-index``: no network is needed
inside the build.
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
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from harness.checkout import REPO_ROOT, forget_stale_build
from harness.container.engine import LABEL, docker_client, image_exists
from harness.container.errors import ContainerError, tail

log = logging.getLogger(__name__)

SERVER_DIR = REPO_ROOT / "ci" / "server"
IMAGE_REPO = "tolu-server"
DEPS_REPO = "tolu-server-deps"
UPSTREAM_BASE = "python:3.11-slim"
LOCAL_BASE = "local/debian-python:bookworm"


def default_base_image(client: Any) -> str:
    """TOLU_SERVER_BASE_IMAGE, else python:3.11-slim if present, else the local Debian image if
    present, else python:3.11-slim (the engine will try to pull it)."""
    env = os.environ.get("TOLU_SERVER_BASE_IMAGE")
    if env:
        return env
    for candidate in (UPSTREAM_BASE, LOCAL_BASE):
        if image_exists(client, candidate):
            return candidate
    return UPSTREAM_BASE


# ----------------------------------------------------------------------------- digests


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


def _constraints() -> str:
    lines = []
    for d in importlib.metadata.distributions():
        name = d.metadata["Name"]
        if name and name.lower() != "tolu":
            lines.append(f"{name}=={d.version}")
    return "\n".join(sorted(set(lines))) + "\n"


# ----------------------------------------------------------------------------- building


def _run(cmd: list[str], log_file: Path) -> None:
    with log_file.open("a") as out:
        out.write("$ " + " ".join(cmd) + "\n")
        out.flush()
        proc = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, check=False)
    if proc.returncode != 0:
        raise ContainerError(
            f"{' '.join(cmd[:5])} ... exited {proc.returncode}", log_tail=tail(log_file), log_path=log_file
        )


@contextlib.contextmanager
def build_lock() -> Iterator[None]:
    """One image build at a time on this machine (pytest-xdist workers share the engine; a
    build prunes dangling images, which a concurrent build may still be using)."""
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
    """Build (or reuse) the server image; return its tag ``tolu-server:<digest>``."""
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
        with build_lock():
            deps_tag = f"{DEPS_REPO}:{deps_digest(base)}"
            if force or not image_exists(client, deps_tag):
                _build_deps_image(client, base, deps_tag, log_file)
            tag = f"{IMAGE_REPO}:{image_digest(deps_tag)}"
            if force or not image_exists(client, tag):
                _build_app_image(client, deps_tag, tag, log_file)
                _prune_images(client, keep={tag, deps_tag})
            return tag
    finally:
        if own_client:
            client.close()


def _build_deps_image(client: Any, base: str, tag: str, log_file: Path) -> None:
    started = time.monotonic()
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
    log.info("built %s from %s in %.0f s", tag, base, time.monotonic() - started)


def _build_app_image(client: Any, deps_tag: str, tag: str, log_file: Path) -> None:
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="tolu-app-") as tmp:
        ctx = Path(tmp)
        dist = ctx / "dist"
        app = ctx / "app"
        forget_stale_build()
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
    log.info("built %s in %.0f s", tag, time.monotonic() - started)


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
            f"docker build of {tag} failed: {exc.msg}", log_tail=tail(log_file), log_path=log_file
        ) from exc
    finally:
        # a multi-stage build leaves its build stage behind as a dangling image; vfs stores it in full
        with contextlib.suppress(Exception):
            client.images.prune(filters={"dangling": True})


#: images younger than this survive a prune: on an engine shared by several checkouts (or
#: processes) another one may have just built it and be about to run it or build FROM it
PRUNE_MIN_AGE_SEC = 3600


def _prune_images(client: Any, keep: set[str]) -> None:
    """Remove older tolu-server images (in use ones stay: docker refuses to remove them; those
    built in the last PRUNE_MIN_AGE_SEC stay too)."""
    for image in client.images.list(filters={"label": LABEL}):
        tags = set(image.tags)
        if _age_sec(image) < PRUNE_MIN_AGE_SEC:
            continue
        if tags and not tags & keep and all(t.split(":")[0] in {IMAGE_REPO, DEPS_REPO} for t in tags):
            for t in tags:
                with contextlib.suppress(Exception):
                    client.images.remove(t)


def _age_sec(image: Any) -> float:
    """Seconds since the engine built ``image`` (0 when it does not say: then it is kept)."""
    created = str(image.attrs.get("Created", ""))[:19]  # 2026-11-26T16:55:12.123456789Z
    try:
        built = datetime.strptime(created, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC)
    except ValueError:
        return 0.0
    return (datetime.now(UTC) - built).total_seconds()
