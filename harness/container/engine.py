"""The docker engine: a client for it, and the labels tolu puts on what it makes there."""

from __future__ import annotations

from typing import Any

#: on tolu's images, containers and volumes: "image", "server" or "volume"
LABEL = "tolu.server"
#: on containers and volumes: the pid of the process that made them (see ``leftovers``)
OWNER_LABEL = "tolu.owner-pid"
CLIENT_TIMEOUT_SEC = 120


def docker_client() -> Any:
    """A docker SDK client for the engine in the environment (DOCKER_HOST or the local socket)."""
    import docker  # imported here: the harness works without the docker SDK and engine

    client = docker.from_env(timeout=CLIENT_TIMEOUT_SEC)
    client.ping()
    return client


def image_exists(client: Any, tag: str) -> bool:
    import docker.errors

    try:
        client.images.get(tag)
    except docker.errors.ImageNotFound:
        return False
    return True
