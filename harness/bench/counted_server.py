"""``python -m harness.bench.counted_server ARGS``: H1's server, unchanged, with a request counter.

The benchmark needs the number of requests the server answered, counted on the
server side. This runs ``runner.server``'s own entry point with the ASGI app
wrapped in a counter that answers ``GET /_bench/requests`` (total and per route,
ids folded to ``{id}``); nothing else about the server differs.
"""

from __future__ import annotations

import json
import re
import sys
from collections import Counter
from typing import Any

_ID = re.compile(r"/\d+(?=/|$)")
COUNTER_PATH = "/_bench/requests"


class CountingMiddleware:
    def __init__(self, app: Any) -> None:
        self.app = app
        self.counts: Counter[str] = Counter()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            path = str(scope.get("path", ""))
            if path == COUNTER_PATH:
                answer = {"total": sum(self.counts.values()), "by_route": dict(self.counts)}
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
        await self.app(scope, receive, send)


def main(argv: list[str] | None = None) -> int:
    import runner.server.app as app_module
    from runner.server import __main__ as server_main

    original = app_module.create_app

    def create_app(*args: Any, **kwargs: Any) -> Any:
        return CountingMiddleware(original(*args, **kwargs))

    app_module.create_app = create_app
    return int(server_main.main(argv))


if __name__ == "__main__":
    sys.exit(main())
