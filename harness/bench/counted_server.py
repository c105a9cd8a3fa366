"""``python -m harness.bench.counted_server ARGS``: H1's server, unchanged, with a request counter.

The benchmark needs the number of requests the server answered, counted on the
server side. This runs ``runner.server``'s own entry point with the ASGI app
wrapped in a counter that answers ``GET /_bench/requests`` (total and per route,
ids folded to ``{id}``); nothing else about the server differs.

With ``--workers N`` the workers are processes that uvicorn starts and that build the
app themselves (``runner.server.workers:create``): each is started here as
:func:`create_worker`, the same app behind the same counter, and each writes its counts
to a file of its own under the data directory after every request it counts, so that
whichever worker answers ``GET /_bench/requests`` adds up all of them.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
from collections import Counter
from pathlib import Path
from typing import Any

_ID = re.compile(r"/\d+(?=/|$)")
COUNTER_PATH = "/_bench/requests"
#: the factory uvicorn runs in each worker (runner/server/workers.py), and ours around it
WORKER_FACTORY = "runner.server.workers:create"
COUNTED_WORKER_FACTORY = "harness.bench.counted_server:create_worker"
#: where the workers' counts are shared, under the server's data directory
COUNTS_DIR = "bench-requests"


class CountingMiddleware:
    def __init__(self, app: Any, counts_dir: Path | None = None) -> None:
        self.app = app
        self.counts: Counter[str] = Counter()
        #: several workers: each one's counts as a file there (None: this process is the server)
        self.counts_dir = counts_dir
        if counts_dir is not None:
            counts_dir.mkdir(parents=True, exist_ok=True)
            self._mine = counts_dir / f"{os.getpid()}.json"

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            path = str(scope.get("path", ""))
            if path == COUNTER_PATH:
                counts = self.totals()
                answer = {"total": sum(counts.values()), "by_route": dict(counts)}
                body = json.dumps(answer).encode()
                await send(
                    {
                        "type": "http.response.start",
                        "status": 200,
                        "headers": [(b"content-type", b"application/json")],
                    }
                )
                await send({"type": "http.response.body", "body": body})
                return
            self.counts[f"{scope.get('method', '?')} {_ID.sub('/{id}', path)}"] += 1
            self._publish()
        await self.app(scope, receive, send)

    def _publish(self) -> None:
        if self.counts_dir is None:
            return
        # replaced whole, so that a worker reading it never sees half a file
        tmp = self._mine.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.counts))
        os.replace(tmp, self._mine)

    def totals(self) -> Counter[str]:
        """This process's counts, and every other worker's (a worker that was restarted
        keeps its file: the requests it answered were answered)."""
        if self.counts_dir is None:
            return self.counts
        total: Counter[str] = Counter(self.counts)
        for file in self.counts_dir.glob("*.json"):
            if file != self._mine:
                total.update(json.loads(file.read_text()))
        return total


def create_worker() -> Any:
    """One worker of ``--workers N``: the server's own worker app, counted."""
    from runner.server import workers
    from runner.server.settings import ENV_DATA_DIR

    return CountingMiddleware(workers.create(), Path(os.environ[ENV_DATA_DIR]) / COUNTS_DIR)


def main(argv: list[str] | None = None) -> int:
    import uvicorn

    import runner.server.app as app_module
    from runner.server import __main__ as server_main
    from runner.server.settings import ENV_DATA_DIR

    original = app_module.create_app

    def create_app(*args: Any, **kwargs: Any) -> Any:
        return CountingMiddleware(original(*args, **kwargs))

    run = uvicorn.run

    def run_counted(app: Any, **kwargs: Any) -> None:
        # several workers: each builds its app from the factory uvicorn is given; the
        # counts of an earlier server on this data directory are not this one's
        if app == WORKER_FACTORY:
            shutil.rmtree(Path(os.environ[ENV_DATA_DIR]) / COUNTS_DIR, ignore_errors=True)
            app = COUNTED_WORKER_FACTORY
        run(app, **kwargs)

    app_module.create_app = create_app
    uvicorn.run = run_counted
    return int(server_main.main(argv))


if __name__ == "__main__":
    sys.exit(main())
