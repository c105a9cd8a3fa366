"""Step 2: start the server (a container, a process, or an existing URL) and ask /health."""

from __future__ import annotations

from typing import TYPE_CHECKING

import requests

from harness.container.server import ContainerServer
from harness.pipeline.step import StepFailed
from runner.server.process import ServerProcess

if TYPE_CHECKING:
    from harness.pipeline.context import Run

CONTAINER_START_SEC = 180  # may build the image first
PROCESS_START_SEC = 60


def start_server(run: Run) -> str:
    mode = run.options.server
    data = run.work / "server"
    log_path = run.out_dir / "logs" / "server.log"
    if mode.startswith(("http://", "https://")):
        run.url = mode.rstrip("/")
    elif mode == "container":
        container = ContainerServer(data, database_url=run.options.database_url, log_path=log_path)
        run.server = container
        container.start(timeout=CONTAINER_START_SEC)
        run.url = container.url
    elif mode == "process":
        process = ServerProcess(data, database_url=run.options.database_url, log_path=log_path)
        run.server = process
        process.start(timeout=PROCESS_START_SEC)
        run.url = process.url
    else:
        raise StepFailed(f"--server {mode!r}: expected process, container or a URL")
    try:
        health = requests.get(f"{run.url}/health", timeout=10).json()
    except Exception as exc:
        raise StepFailed(f"{run.url}/health does not answer: {exc}") from exc
    return f"{mode} at {run.url} (version {health.get('version')}, {health.get('database')})"
