"""What every request passes before a route sees it: authentication, then a size limit.

An ASGI middleware, so both happen before any body is read or parsed:

- **401 first.** A request for an operation that needs a caller (its route depends
  on ``runner.server.auth.verify.caller``, found once from the routes) is
  authenticated here, by ``authenticate`` (the one token check), before anything
  reads its body: without a valid token it is answered 401 (403 for a credential
  that may not do it) however large or malformed its body. The caller is cached in
  the request's state, where the route's dependency finds it. A launcher's three
  requests with a small body are the hot path's (runner/server/hotpath.py): it checks
  their token in the same trip to the thread pool as their work, before their body.
- **422 for NUL in the query.** No database text column and no argv can hold a NUL
  character, so a query string that carries one (``%00``) is answered 422 naming the
  parameter, for every operation at once (bodies are checked by their models:
  ``runner.models.no_nul``).
- **413 while reading.** A body larger than ``max_body_bytes`` is refused with 413:
  at once when ``Content-Length`` says so, else as soon as the bytes received pass
  the limit (chunked uploads), before the rest is read or buffered.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from typing import Any
from urllib.parse import parse_qsl

from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.routing import compile_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from runner.server import hotpath
from runner.server.auth.verify import authenticate, caller
from runner.server.errors import ServiceError, dumps, send_json

#: default largest request body (bytes): a bulk request of MAX_BULK jobs fits with room.
MAX_BODY_BYTES = 64 << 20


def needs_caller(route: Any) -> bool:
    """Whether ``route`` depends on the caller (``caller``), directly or not."""
    if not isinstance(route, APIRoute):
        return False
    todo = list(route.dependant.dependencies)
    while todo:
        dep = todo.pop()
        if dep.call is caller:
            return True
        todo.extend(dep.dependencies)
    return False


def api_routes(routes: Iterable[Any], prefix: str = "") -> Iterator[tuple[str, APIRoute]]:
    """(full path, route) of every APIRoute, also inside included routers (FastAPI
    >= 0.160 keeps those as ``_IncludedRouter`` entries holding the original router)."""
    for route in routes:
        if isinstance(route, APIRoute):
            yield prefix + route.path, route
        inner = getattr(route, "original_router", None)
        if inner is not None:
            context = getattr(route, "include_context", None)
            yield from api_routes(inner.routes, prefix + str(getattr(context, "prefix", "") or ""))


class Gate:
    def __init__(self, app: ASGIApp, *, max_body_bytes: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self._protected: list[tuple[re.Pattern[str], frozenset[str]]] | None = None

    def protected(self, scope: Scope) -> bool:
        """Whether the operation this request asks for needs a caller."""
        if self._protected is None:  # the routes are all there by the first request
            self._protected = [
                (compile_path(path)[0], frozenset(route.methods or ()))
                for path, route in api_routes(scope["app"].routes)
                if needs_caller(route)
            ]
            if not self._protected:
                raise RuntimeError("the gate found no route that needs a caller (did FastAPI change?)")
        path, method = scope["path"], scope["method"]
        return any(method in methods and rx.match(path) for rx, methods in self._protected)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self.protected(scope) and not hotpath.takes(scope, min(hotpath.SMALL_BODY, self.max_body_bytes)):
            try:
                await run_in_threadpool(authenticate, Request(scope))
            except ServiceError as exc:
                headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
                await _answer(send, exc.status, exc.body(), headers)
                return
        query = scope.get("query_string", b"")
        if b"%00" in query:
            await _answer(send, 422, {"detail": [_nul_in_query(query)]})
            return
        length = _header(scope, b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_body_bytes:
            await _answer(send, 413, {"detail": self._too_large()})
            return
        await self.app(scope, self._limited(receive), send)

    def _too_large(self) -> str:
        return f"request body larger than {self.max_body_bytes} bytes; send less per request"

    def _limited(self, receive: Receive) -> Receive:
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_body_bytes:
                    # raised inside the route's body read: the app's handler answers 413
                    raise HTTPException(413, self._too_large())
            return message

        return limited


def _nul_in_query(query: bytes) -> dict[str, Any]:
    """The error (FastAPI's shape) for the first query parameter with a NUL in it."""
    name = next(
        (k for k, v in parse_qsl(query.decode("latin-1"), keep_blank_values=True) if "\x00" in k + v), ""
    )
    return {
        "loc": ["query", name.replace("\x00", "\\x00")],
        "msg": "NUL characters (\\x00) are not allowed",
        "type": "nul_character",
    }


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return str(value.decode("latin-1"))
    return None


async def _answer(send: Send, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
    await send_json(send, status, dumps(body), headers)
