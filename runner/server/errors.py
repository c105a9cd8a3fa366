"""Domain errors of the services and how they become HTTP answers.

Services raise these; they know nothing about HTTP. ``install`` maps them (and
FastAPI's own validation errors) to the bodies docs/api.md promises.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from sqlalchemy.exc import IntegrityError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("tolu.server")

Loc = Sequence[str | int]
#: what FastAPI answers (400) for a body it cannot even decode.
FASTAPI_BODY_ERROR = "There was an error parsing the body"


class ServiceError(Exception):
    status = 400

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail

    def body(self) -> Any:
        return {"detail": self.detail}


class Unauthorized(ServiceError):
    status = 401


class Forbidden(ServiceError):
    """Authenticated, but this credential may not do it (read-only, site token, not admin)."""

    status = 403


class TooManyRequests(ServiceError):
    """429 with ``Retry-After``: e.g. too many failed logins for an account or address."""

    status = 429

    def __init__(self, detail: str, retry_after: float) -> None:
        super().__init__(detail)
        self.retry_after = max(1, int(retry_after + 0.999))


class OAuthError(ServiceError):
    """An OAuth 2.0 error answer (RFC 6749 section 5.2, RFC 8628 section 3.5): ``error`` is the
    code clients switch on (``authorization_pending``, ``slow_down``...), ``detail`` the sentence."""

    def __init__(self, error: str, detail: str, status: int = 400) -> None:
        super().__init__(detail)
        self.error = error
        self.status = status

    def body(self) -> Any:
        return {"error": self.error, "error_description": self.detail, "detail": self.detail}


class NotFound(ServiceError):
    status = 404


class Conflict(ServiceError):
    status = 409


class Invalid(ServiceError):
    """422 with one or more field paths, shaped like FastAPI's own validation errors."""

    status = 422

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        super().__init__("; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in errors))
        self.errors = errors

    @classmethod
    def at(cls, loc: Loc, msg: str, type_: str = "value_error") -> Invalid:
        return cls([{"loc": list(loc), "msg": msg, "type": type_}])

    def body(self) -> Any:
        return {"detail": self.errors}


#: the 409 of two requests that raced past a uniqueness check (e.g. the same username at once).
CONFLICT = "conflict with a concurrent change; retry the request"


def dumps(body: Any) -> bytes:
    """An answer's JSON (naive datetimes are UTC, written with a ``Z``)."""
    return orjson.dumps(body, option=orjson.OPT_NAIVE_UTC | orjson.OPT_UTC_Z)


def json_response(body: Any, status: int = 200) -> Response:
    return Response(dumps(body), status_code=status, media_type="application/json")


async def send_json(send: Send, status: int, raw: bytes, headers: dict[str, str] | None = None) -> None:
    """Answer with the JSON ``raw`` straight through ASGI (middleware that answers itself)."""
    head = [(b"content-type", b"application/json"), (b"content-length", str(len(raw)).encode())]
    head += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": head})
    await send({"type": "http.response.body", "body": raw})


def error_headers(exc: ServiceError) -> dict[str, str]:
    """The headers that go with ``exc``'s answer."""
    headers = {}
    if exc.status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    if isinstance(exc, TooManyRequests):
        headers["Retry-After"] = str(exc.retry_after)
    if isinstance(exc, OAuthError):
        headers["Cache-Control"] = "no-store"
    return headers


def _clean(errors: Sequence[Any]) -> list[dict[str, Any]]:
    out = []
    for err in errors:
        item = {"loc": list(err.get("loc", ())), "msg": str(err.get("msg", "")), "type": err.get("type", "")}
        if "input" in err and err.get("type") == "extra_forbidden":
            item["msg"] = f"unknown field {item['loc'][-1]!r}" if item["loc"] else "unknown field"
        out.append(item)
    return out


def install(app: FastAPI) -> None:
    async def service_error(_request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ServiceError)
        resp = json_response(exc.body(), exc.status)
        resp.headers.update(error_headers(exc))
        return resp

    async def validation_error(_request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        return json_response({"detail": _clean(exc.errors())}, 422)

    async def http_error(_request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        if exc.status_code == 400 and exc.detail == FASTAPI_BODY_ERROR:
            # a body that is not JSON text (e.g. not UTF-8): the same 422 as malformed JSON
            msg = "the body is not valid JSON text (UTF-8)"
            body = [{"loc": ["body"], "msg": msg, "type": "json_invalid"}]
            return json_response({"detail": body}, 422)
        return json_response({"detail": exc.detail}, exc.status_code)

    async def integrity_error(_request: Request, exc: Exception) -> Response:
        return json_response({"detail": CONFLICT}, 409)

    app.add_exception_handler(IntegrityError, integrity_error)
    app.add_exception_handler(ServiceError, service_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(StarletteHTTPException, http_error)


def validation_details(errors: Sequence[Any]) -> list[dict[str, Any]]:
    """pydantic's errors shaped like a 422's ``detail``, for answers outside an HTTP
    response (the event stream's error message)."""
    return _clean(errors)


class Unexpected:
    """The outermost middleware: an exception no handler expected (a bug) is logged with
    its traceback and answered 500 with a JSON ``detail``, on a connection that stays
    open. Without it uvicorn answered text/plain, which clients take for another
    server's, and once an answer had begun it closed the connection under the client
    (a reset that could swallow the answer itself)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def watched(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, watched)
        except Exception as exc:
            if started:
                raise  # half an answer is out: only closing the connection can say it failed
            log.exception("unexpected error answering %s %s", scope.get("method"), scope.get("path"))
            detail = f"internal server error ({type(exc).__name__}); the server's log has its traceback"
            await json_response({"detail": detail}, 500)(scope, receive, send)
