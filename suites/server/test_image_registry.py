"""The server image published to a real registry (Debian's docker-registry on 127.0.0.1, started
by ci/provision/registry.sh): OCI labels, version and commit tags, push, local copy removed,
pulled back by digest, run, healthy."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import requests

import runner
from harness.container.engine import docker_client
from harness.container.image import build_server_image
from harness.container.server import ContainerServer
from harness.deploy import registry as reg
from harness.evidence import Evidence
from harness.probes import registry_address
from runner.server import schema

pytestmark = [pytest.mark.requires("docker", "registry")]


def test_push_remove_pull_by_digest_and_run(tmp_path: Path, tolu_evidence: Evidence) -> None:
    address = registry_address()
    client = docker_client()
    image = build_server_image(log_path=tmp_path / "image-build.log")
    commit = reg.git_commit()
    published = reg.publish(client, image, address, log=tmp_path / "publish.log")
    t_push = time.monotonic()
    try:
        assert published.tags == [runner.__version__, f"sha-{commit[:12]}"]
        assert published.digest.startswith("sha256:")
        listed = requests.get(f"http://{address}/v2/{reg.REPOSITORY}/tags/list", timeout=30).json()
        assert set(published.tags) <= set(listed["tags"])

        reference = reg.round_trip(client, published, address)
        t_pull = time.monotonic()
        assert reference == f"{address}/{reg.REPOSITORY}@{published.digest}"
        assert (
            len(published.blobs) >= 4 and published.pushed_bytes > 10_000_000
        )  # config + the image's layers

        labels = client.images.get(reference).attrs["Config"]["Labels"]
        assert labels["org.opencontainers.image.version"] == runner.__version__
        assert labels["org.opencontainers.image.revision"] == commit
        assert labels["org.opencontainers.image.title"] == "tolu-server"

        with ContainerServer(tmp_path / "pulled", image=reference) as server:
            health = requests.get(server.url + "/health", timeout=10).json()
            t_up = time.monotonic()
        assert health["status"] == "ok" and health["version"] == runner.__version__
        assert health["schema_revision"] == schema.head_revision()
    finally:
        reg.remove_published(client, published)
        client.close()
    timing = (
        f"label {published.seconds['label']:.1f} s + push {published.seconds['push']:.1f} s, "
        f"remove + check + pull {t_pull - t_push:.1f} s (pull {published.seconds['pull']:.1f} s), "
        f"run until healthy {t_up - t_pull:.1f} s, {published.pushed_bytes / 1e6:.0f} MB in the registry, "
        f"{len(published.blobs)} blobs, {published.reference}"
    )
    (tmp_path / "round-trip.log").write_text(timing + "\n")
    tolu_evidence.add_log("registry round trip", tmp_path / "round-trip.log")
    tolu_evidence.add_log("publish", tmp_path / "publish.log")
    print(timing)
