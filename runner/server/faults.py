"""The server's test mode: answer chosen requests with a chosen error for a while.

Only for tests of what clients do when the server misbehaves (a launcher's reporter
keeping its reports through 503s and 401s). It exists only in a server started
with ``TOLU_TEST_FAULTS=1`` in its environment (the harness sets it for the tests
that need it); without it neither the middleware nor the ``/_test/faults`` route is
installed, so no request can turn it on in production.

``PUT /_test/faults`` with ``{"status": 503, "seconds": 10, "paths": ["/reports"]}``
answers every request whose path contains one of ``paths`` (default: all but
``/health`` and ``/_test``) with ``status`` for ``seconds``; ``GET`` says how many
requests it answered with each status, ``DELETE`` ends it. With ``"after": true`` each
such request is carried out first and only its answer is replaced: the answer lost on
its way back (a server killed after its commit, a proxy's timeout), the case a retry
must not turn into work done twice or work held by nobody. With ``"raise": true``
each such request raises an exception in the server instead: what a bug does, answered
and logged as one (only with status 500 and without ``after``, else the switch answers
422).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

import orjson
from fastapi import FastAPI
from pydantic import BaseModel, Field, model_validator
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

ENV = "TOLU_TEST_FAULTS"
EXEMPT = ("/health", "/_test")


def enabled() -> bool:
    return os.environ.get(ENV) == "1"


class InjectedError(RuntimeError):
    """What a request raises while ``"raise": true`` is on."""


class FaultSpec(BaseModel):
    status: int = Field(ge=400, le=599)
    seconds: float = Field(gt=0, le=3600)
    paths: list[str] = Field(default_factory=list)
    after: bool = False
    raise_: bool = Field(False, alias="raise")

    @model_validator(mode="after")
    def _raise_is_a_bug(self) -> FaultSpec:
        # a bug's exception is answered 500 and only 500; raising also means no answer to lose
        if self.raise_ and self.status != 500:
            raise ValueError(f"raise: an exception is answered 500, not {self.status}")
        if self.raise_ and self.after:
            raise ValueError("raise: an exception leaves no answer to lose (drop after)")
        return self


@dataclass
class Faults:
    status: int = 0
    until: float = 0.0
    paths: tuple[str, ...] = ()
    #: carry the request out, then answer ``status`` in place of its answer
    after: bool = False
    #: raise an exception in place of answering (a bug's 500)
    raise_: bool = False
    #: status -> requests answered with it so far
    hits: dict[int, int] = field(default_factory=dict)

    def matches(self, path: str) -> bool:
        if not self.status or time.monotonic() >= self.until or path.startswith(EXEMPT):
            return False
        return not self.paths or any(p in path for p in self.paths)


class FaultMiddleware:
    def __init__(self, app: ASGIApp, faults: Faults) -> None:
        self.app = app
        self.faults = faults

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.faults.matches(scope["path"]):
            await self.app(scope, receive, send)
            return
        self.faults.hits[self.faults.status] = self.faults.hits.get(self.faults.status, 0) + 1
        if self.faults.raise_:
            raise InjectedError(f"fault injected by the server's test mode ({ENV})")
        if self.faults.after:

            async def lost(message: Message) -> None:
                pass  # the request's own answer never leaves

            await self.app(scope, receive, lost)
        body = orjson.dumps({"detail": f"fault injected by the server's test mode ({ENV})"})
        headers = {"WWW-Authenticate": "Bearer"} if self.faults.status == 401 else None
        resp = Response(body, status_code=self.faults.status, media_type="application/json", headers=headers)
        await resp(scope, receive, send)


def install(app: FastAPI) -> None:
    """Add the fault switch to ``app`` (call only when ``enabled()``)."""
    faults = Faults()
    app.add_middleware(FaultMiddleware, faults=faults)

    @app.put("/_test/faults", include_in_schema=False)
    def set_faults(spec: FaultSpec) -> dict[str, object]:
        faults.status = spec.status
        faults.until = time.monotonic() + spec.seconds
        faults.paths = tuple(spec.paths)
        faults.after = spec.after
        faults.raise_ = spec.raise_
        return {"status": spec.status, "seconds": spec.seconds, "paths": spec.paths, "after": spec.after,
                "raise": faults.raise_}  # fmt: skip

    @app.get("/_test/faults", include_in_schema=False)
    def get_faults() -> dict[str, object]:
        return {"status": faults.status, "hits": faults.hits}

    @app.delete("/_test/faults", include_in_schema=False)
    def clear_faults() -> dict[str, object]:
        hits, faults.status, faults.hits = faults.hits, 0, {}
        return {"hits": hits}
