"""Shared route dependencies and query parameters.

The dependencies are coroutines although none of them waits for anything: FastAPI runs
a plain function dependency in its thread pool, and each such hand-off to a worker
thread and back cost 0.3 ms of the server's CPU per request on the development machine
(docs/performance.md, "Thread hops per request").
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import Depends, Query, Request

from runner.models import INT64_MAX
from runner.server.auth.principal import Principal
from runner.server.auth.verify import Verifier, caller, client_address
from runner.server.db import Database, utcnow
from runner.server.services.common import DEFAULT_LIMIT, MAX_LIMIT


async def get_db(request: Request) -> Database:
    db: Database = request.app.state.db
    return db


async def get_verifier(request: Request) -> Verifier:
    verifier: Verifier = request.app.state.auth
    return verifier


async def get_up_since(request: Request) -> datetime:
    """Since when the server has been able to hear heartbeats (see sessions.expire);
    now, while its database is away."""
    since: datetime | None = request.app.state.up_since
    return since or utcnow()


async def get_address(request: Request) -> str | None:
    return client_address(request)


Db = Annotated[Database, Depends(get_db)]
#: the caller (``runner.server.auth.verify.caller``): 401/403 before the route runs.
Who = Annotated[Principal, Depends(caller)]
Auth = Annotated[Verifier, Depends(get_verifier)]
#: the caller's network address (rate limits, audit events).
Address = Annotated[str | None, Depends(get_address)]
UpSince = Annotated[datetime, Depends(get_up_since)]
Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description="page size")]
Offset = Annotated[int, Query(ge=0, le=INT64_MAX, description="rows to skip")]
DEFAULT = DEFAULT_LIMIT
