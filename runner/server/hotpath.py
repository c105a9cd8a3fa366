"""The three requests every job passes through, answered without FastAPI's routing.

A launcher's ``POST /sessions/{id}/heartbeat``, ``.../acquire`` and ``.../reports``
cost the server milliseconds of CPU each before the jobs they carry, and most of it
was the framework: the exception middleware, matching the route, solving its
dependencies, a response object (docs/performance.md, "What a request costs"). This
ASGI middleware sits right under the gate (runner/server/gate.py), which has already
authenticated the request, limited its body and refused a NUL in its query, and
answers the well-formed ones itself: it reads the body, parses it with the same
models, runs the same service function in the thread pool and sends its JSON.

Everything else goes on to FastAPI unchanged, with the body replayed when it was
read: an id out of range, a body the models refuse (so a 422 is FastAPI's own, word
for word), an acquire whose content type is not JSON. The routes in routes/sessions.py stay
the operations' definition in OpenAPI and answer those cases.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import TypeAdapter, ValidationError
from sqlalchemy.exc import IntegrityError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from runner import models
from runner.server.auth.principal import Principal
from runner.server.db import utcnow
from runner.server.errors import CONFLICT, ServiceError, dumps, error_headers, send_json
from runner.server.services import reports, sessions

#: the launchers' three operations; any other path or method goes on to FastAPI.
PATH = re.compile(r"/sessions/([0-9]{1,10})/(heartbeat|acquire|reports)\Z")
_ACQUIRE: TypeAdapter[models.AcquireSpec] = TypeAdapter(models.AcquireSpec)
_REPORTS: TypeAdapter[list[models.JobReport]] = TypeAdapter(list[models.JobReport])
_JSON = b"application/json"


class HotPath:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        match = PATH.match(scope["path"]) if scope["type"] == "http" and scope["method"] == "POST" else None
        principal = scope.get("state", {}).get("principal") if match else None
        if match is None or not isinstance(principal, Principal):
            await self.app(scope, receive, send)
            return
        session_id, operation = int(match[1]), match[2]
        # FastAPI's 422s: the path parameter out of range; an acquire's body that does not
        # say it is JSON (FastAPI's strict content type; the reports' body is JSON whatever
        # it says, routes/body.py)
        if session_id > models.INT32_MAX or (operation == "acquire" and not _says_json(scope)):
            await self.app(scope, receive, send)
            return
        try:
            raw = await _body(receive)
        except HTTPException as exc:  # the gate's body limit (413)
            await _answer(send, exc.status_code, {"detail": exc.detail})
            return
        try:
            spec = _parse(operation, raw)
        except ValidationError:
            await self.app(scope, _replay(raw, receive), send)  # FastAPI's 422, word for word
            return
        state = scope["app"].state
        try:
            answer = await run_in_threadpool(_serve, operation, state, principal, session_id, spec)
        except ServiceError as exc:
            await _answer(send, exc.status, exc.body(), error_headers(exc))
            return
        except IntegrityError:
            await _answer(send, 409, {"detail": CONFLICT})
            return
        await send_json(send, 200, answer)


def _says_json(scope: Scope) -> bool:
    """Whether the request's content type is JSON (``application/json``, ``.../x+json``)."""
    for key, value in scope["headers"]:
        if key == b"content-type":
            kind = value.split(b";", 1)[0].strip().lower()
            return kind == _JSON or (kind.startswith(b"application/") and kind.endswith(b"+json"))
    return False


async def _body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break  # the client went away: the service runs on what came, as FastAPI's would
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _replay(raw: bytes, receive: Receive) -> Receive:
    """A ``receive`` that hands on ``raw`` as the whole body, then defers to ``receive``."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": raw, "more_body": False}

    return replay


def _parse(operation: str, raw: bytes) -> Any:
    if operation == "heartbeat":
        return None  # a heartbeat has no body; like FastAPI, ignore one that came
    # JSON carries a NUL only as the escape \u0000: without one the models' per-field
    # NUL check has nothing to find (models.no_nul; routes/body.py does the same)
    context = models.NUL_FREE if b"\\u0000" not in raw else None
    adapter: TypeAdapter[Any] = _ACQUIRE if operation == "acquire" else _REPORTS
    return adapter.validate_json(raw, context=context)


def _serve(operation: str, state: Any, who: Principal, session_id: int, spec: Any) -> bytes:
    """The operation's answer, as routes/sessions.py computes it (in a worker thread)."""
    db = state.db
    up_since = state.up_since or utcnow()
    with db.write() as conn:
        if operation == "acquire":
            held: bytes = sessions.acquire(conn, db, who, session_id, spec, up_since=up_since)
            return held
        if operation == "reports":
            return dumps(reports.apply(conn, who, session_id, spec))
        return dumps(sessions.heartbeat(conn, who, session_id, up_since=up_since))


async def _answer(send: Send, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
    await send_json(send, status, dumps(body), headers)
