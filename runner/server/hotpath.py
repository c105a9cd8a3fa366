"""The three requests every job passes through, answered without FastAPI's routing.

A launcher's ``POST /sessions/{id}/heartbeat``, ``.../acquire`` and ``.../reports``
cost the server milliseconds of CPU each before the jobs they carry, and most of it
was the framework: the exception middleware, matching the route, solving its
dependencies, a response object, and two hand-offs to a worker thread, one for the
caller's token and one for the route (docs/performance.md, "What a request costs").
This ASGI middleware sits right under the gate (runner/server/gate.py), which has
limited the body and refused a NUL in the query, and answers the well-formed ones
itself, in one trip to the thread pool and one transaction: the body parsed with the
same models, the caller's grant read, the same service function run.

Who asks still comes first. The gate checks the token of a request whose body may be
large (announced over ``SMALL_BODY`` bytes, or not announced); it leaves that of a
small one to this module, which reads the body, then checks the token before it looks
at the body, in the same trip. Without a valid token the answer is the gate's 401,
whatever the body.

Everything else goes on to FastAPI, authenticated, with the body replayed when it
was read: an id out of range, a body the models refuse (so a 422 is FastAPI's own,
word for word), an acquire whose content type is not JSON. The routes in
routes/sessions.py stay the operations' definition in OpenAPI and answer those cases.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import TypeAdapter, ValidationError
from sqlalchemy.exc import IntegrityError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from runner import models
from runner.server.auth.verify import authenticate
from runner.server.db import utcnow
from runner.server.errors import CONFLICT, ServiceError, dumps, error_headers, send_json
from runner.server.services import reports, sessions

#: the launchers' three operations; any other path or method goes on to FastAPI.
PATH = re.compile(r"/sessions/([0-9]{1,10})/(heartbeat|acquire|reports)\Z")
#: a body announced no larger than this is read before its token is checked, in the
#: same trip to the thread pool as the work (bytes): a report of 1,000 jobs is ~150 KB.
SMALL_BODY = 1 << 20
_ACQUIRE: TypeAdapter[models.AcquireSpec] = TypeAdapter(models.AcquireSpec)
_REPORTS: TypeAdapter[list[models.JobReport]] = TypeAdapter(list[models.JobReport])
_JSON = b"application/json"
#: what ``_serve`` answers for a body the models refuse: FastAPI's route answers it.
_REFUSED = object()


def takes(scope: Scope, limit: int = SMALL_BODY) -> bool:
    """Whether this module answers the request, and checks its token: one of the three,
    with a body announced no larger than ``limit`` bytes (the gate's checks the others')."""
    if scope["method"] != "POST" or PATH.match(scope["path"]) is None or b"%00" in scope["query_string"]:
        return False  # (the gate's 422 for a NUL in the query comes after its 401)
    for key, value in scope["headers"]:
        if key == b"content-length":
            return value.isdigit() and int(value) <= limit
    return False


class HotPath:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        match = PATH.match(scope["path"]) if scope["type"] == "http" and scope["method"] == "POST" else None
        if match is None:
            await self.app(scope, receive, send)
            return
        try:
            await self._serve(scope, receive, send, int(match[1]), match[2])
        except ServiceError as exc:
            await send_json(send, exc.status, dumps(exc.body()), error_headers(exc))
        except IntegrityError:
            await send_json(send, 409, dumps({"detail": CONFLICT}))

    async def _serve(
        self, scope: Scope, receive: Receive, send: Send, session_id: int, operation: str
    ) -> None:
        request = Request(scope)
        # FastAPI's 422s: the path parameter out of range; an acquire's body that does not
        # say it is JSON (FastAPI's strict content type; the reports' body is JSON whatever
        # it says, routes/body.py)
        if session_id > models.INT32_MAX or (operation == "acquire" and not _says_json(scope)):
            await run_in_threadpool(authenticate, request)
            await self.app(scope, receive, send)
            return
        try:
            raw = await _body(receive)
        except HTTPException as exc:  # the gate's body limit (413)
            await send_json(send, exc.status_code, dumps({"detail": exc.detail}))
            return
        answer = await run_in_threadpool(_work, request, operation, session_id, raw)
        if answer is _REFUSED:
            await self.app(scope, _replay(raw, receive), send)  # FastAPI's 422, word for word
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


def _work(request: Request, operation: str, session_id: int, raw: bytes) -> Any:
    """In a worker thread, in one transaction: the caller (401/403 first; the gate's when
    it checked it), then the operation's answer as routes/sessions.py computes it;
    ``_REFUSED`` for a body the models refuse (parsed first, answered after the caller)."""
    try:
        spec, refused = _parse(operation, raw), False
    except ValidationError:
        spec, refused = None, True
    state = request.app.state
    db = state.db
    up_since = state.up_since or utcnow()
    with db.write() as conn:
        # the grant's row read in the work's transaction; cached in the request's state,
        # where the route finds it when the body goes on to FastAPI
        who = authenticate(request, conn)
        if refused:
            return _REFUSED
        if operation == "acquire":
            return sessions.acquire(conn, db, who, session_id, spec, up_since=up_since)
        if operation == "reports":
            return dumps(reports.apply(conn, who, session_id, spec))
        return dumps(sessions.heartbeat(conn, who, session_id, up_since=up_since))
