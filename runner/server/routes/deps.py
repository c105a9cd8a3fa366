"""Shared route dependencies and query parameters."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import Depends, Query, Request

from runner.models import INT64_MAX
from runner.server.auth.principal import Principal
from runner.server.auth.verify import Verifier, authenticate, client_address
from runner.server.db import Database, utcnow
from runner.server.services.common import DEFAULT_LIMIT, MAX_LIMIT


def get_db(request: Request) -> Database:
    db: Database = request.app.state.db
    return db


def get_verifier(request: Request) -> Verifier:
    verifier: Verifier = request.app.state.auth
    return verifier


def get_up_since(request: Request) -> datetime:
    """Since when the server has been able to hear heartbeats (see sessions.expire);
    now, while its database is away."""
    since: datetime | None = request.app.state.up_since
    return since or utcnow()


Db = Annotated[Database, Depends(get_db)]
#: the caller (``runner.server.auth.verify.authenticate``): 401/403 before the route runs.
Who = Annotated[Principal, Depends(authenticate)]
Auth = Annotated[Verifier, Depends(get_verifier)]
#: the caller's network address (rate limits, audit events).
Address = Annotated[str | None, Depends(client_address)]
UpSince = Annotated[datetime, Depends(get_up_since)]
Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description="page size")]
Offset = Annotated[int, Query(ge=0, le=INT64_MAX, description="rows to skip")]
DEFAULT = DEFAULT_LIMIT
