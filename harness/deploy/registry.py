"""Publishing the server image: OCI labels, version and commit tags, push, pull back by digest.

The image that is published is the image that was tested (``tolu-server:<digest>``, built by
``harness.container.image``) with the OCI annotations added as labels in a build of one
``FROM`` line: no layer changes, so the layers pushed are the tested ones. It is tagged
``<version>`` and ``sha-<commit>`` and pushed to a registry (the one on 127.0.0.1 that
``ci/provision/registry.sh`` starts in CI; the project's container registry from the hosted
workflow on tags). ``round_trip`` then removes the local tags, checks that the registry holds
the manifest and every blob, pulls by digest and hands back the pulled image's reference,
which the caller runs (``ContainerServer(image=reference)``).
"""

from __future__ import annotations

import contextlib
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import requests

import runner
from harness.checkout import REPO_ROOT
from harness.container.engine import LABEL
from harness.container.errors import ContainerError
from harness.container.image import build_lock

#: the repository's name inside a registry.
REPOSITORY = "tolu/server"
MANIFEST_TYPES = ", ".join(
    [
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    ]
)


def git_commit(root: Path = REPO_ROOT) -> str:
    """The checkout's commit (what the image was built from); ``unknown`` outside git."""
    proc = subprocess.run(
        ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, check=False
    )
    return proc.stdout.strip() if proc.returncode == 0 else "unknown"


def oci_labels(
    version: str, commit: str, *, created: datetime | None = None, source: str = ""
) -> dict[str, str]:
    """The ``org.opencontainers.image.*`` annotations of the server image."""
    labels = {
        "org.opencontainers.image.title": "tolu-server",
        "org.opencontainers.image.description": "the tolu job runner's REST server",
        "org.opencontainers.image.version": version,
        "org.opencontainers.image.revision": commit,
        "org.opencontainers.image.created": (created or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "org.opencontainers.image.licenses": "BSD-3-Clause",
    }
    if source:
        labels["org.opencontainers.image.source"] = source
        labels["org.opencontainers.image.url"] = source
    return labels


def version_tags(version: str, commit: str) -> list[str]:
    """``0.1.0`` and ``sha-0123456789ab``: what is in it, and exactly which build."""
    return [version.replace("+", "-"), f"sha-{commit[:12]}"]


@dataclass
class Published:
    """An image in a registry, as pushed and as seen from there."""

    repository: str
    tags: list[str]
    digest: str
    labels: dict[str, str]
    #: what the registry holds: the manifest's config and layer blobs, each found by HEAD
    blobs: list[str] = field(default_factory=list)
    #: compressed bytes of the layers, as stored in the registry
    pushed_bytes: int = 0
    #: seconds per step: label (the one-line build), push (every tag), pull (round_trip)
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def reference(self) -> str:
        """``host:port/tolu/server@sha256:...``: the image, independent of any tag."""
        return f"{self.repository}@{self.digest}"


def label_image(client: Any, image: str, labels: dict[str, str], targets: list[str], log: Path) -> str:
    """``FROM image`` plus ``labels``, tagged ``targets``; the new image's id."""
    import docker.errors

    with tempfile.TemporaryDirectory(prefix="tolu-publish-") as tmp, build_lock():
        (Path(tmp) / "Dockerfile").write_text(f"FROM {image}\n")
        try:
            built, chunks = client.images.build(
                path=tmp, tag=targets[0], labels={**labels, LABEL: "published"}, rm=True, forcerm=True
            )
        except docker.errors.BuildError as exc:
            raise ContainerError(f"labelling {image} failed: {exc.msg}", log_path=log) from exc
        with log.open("a") as out:
            for chunk in chunks:
                out.write(str(chunk.get("stream", "")))
    for target in targets[1:]:
        repo, _, tag = target.rpartition(":")
        built.tag(repo, tag)
    return str(built.id)


def push(client: Any, repository: str, tag: str, log: Path) -> str:
    """Push ``repository:tag``; the manifest digest the registry answered with."""
    digest = ""
    with log.open("a") as out:
        for line in client.images.push(repository, tag=tag, stream=True, decode=True):
            out.write(f"{line}\n")
            if "error" in line:
                raise ContainerError(f"push of {repository}:{tag} failed: {line['error']}", log_path=log)
            digest = (line.get("aux") or {}).get("Digest", digest)
    if not digest.startswith("sha256:"):
        raise ContainerError(f"push of {repository}:{tag} named no digest", log_path=log)
    return digest


def registry_blobs(registry: str, name: str, digest: str) -> tuple[list[str], int]:
    """The blobs of the manifest ``digest`` that the registry really holds (config + layers, each
    checked with HEAD) and the layers' stored size; raises ``ContainerError`` on a missing one."""
    base = f"http://{registry}/v2/{name}"
    resp = requests.get(f"{base}/manifests/{digest}", headers={"Accept": MANIFEST_TYPES}, timeout=30)
    if resp.status_code != 200:
        raise ContainerError(f"registry {registry} has no manifest {name}@{digest} (HTTP {resp.status_code})")
    manifest = resp.json()
    blobs = [manifest["config"]["digest"], *(layer["digest"] for layer in manifest["layers"])]
    for blob in blobs:
        head = requests.head(f"{base}/blobs/{blob}", timeout=30)
        if head.status_code != 200:
            raise ContainerError(f"registry {registry} lacks blob {blob} of {name}@{digest}")
    return blobs, sum(int(layer["size"]) for layer in manifest["layers"])


def publish(
    client: Any,
    image: str,
    registry: str,
    *,
    log: Path,
    version: str | None = None,
    commit: str | None = None,
    source: str = "",
) -> Published:
    """Label ``image``, tag it with version and commit in ``registry``, push both tags."""
    version = version or runner.__version__
    commit = commit or git_commit()
    repository = f"{registry}/{REPOSITORY}"
    tags = version_tags(version, commit)
    labels = oci_labels(version, commit, source=source)
    t0 = time.monotonic()
    label_image(client, image, labels, [f"{repository}:{t}" for t in tags], log)
    t1 = time.monotonic()
    digests = {push(client, repository, t, log) for t in tags}
    seconds = {"label": t1 - t0, "push": time.monotonic() - t1}
    if len(digests) != 1:
        raise ContainerError(
            f"the tags of one image pushed as different manifests: {sorted(digests)}", log_path=log
        )
    return Published(repository=repository, tags=tags, digest=digests.pop(), labels=labels, seconds=seconds)


def round_trip(client: Any, published: Published, registry: str) -> str:
    """Remove the local tags, check the registry's copy, pull it by digest; the pulled reference."""
    for tag in published.tags:
        with contextlib.suppress(Exception):
            client.images.remove(f"{published.repository}:{tag}")
    if any(f"{published.repository}:{t}" in tags for t in published.tags for tags in _local_tags(client)):
        raise ContainerError(f"{published.repository} is still tagged locally after removal")
    published.blobs, published.pushed_bytes = registry_blobs(registry, REPOSITORY, published.digest)
    t0 = time.monotonic()
    pulled = client.images.pull(published.reference)
    published.seconds["pull"] = time.monotonic() - t0
    if published.reference not in (pulled.attrs.get("RepoDigests") or []):
        raise ContainerError(
            f"pulled {published.reference} but the image names {pulled.attrs.get('RepoDigests')}"
        )
    return published.reference


def _local_tags(client: Any) -> list[list[str]]:
    return [list(i.tags) for i in client.images.list()]


def remove_published(client: Any, published: Published) -> None:
    """Forget the pulled image locally (the registry keeps it)."""
    with contextlib.suppress(Exception):
        client.images.remove(published.reference)
