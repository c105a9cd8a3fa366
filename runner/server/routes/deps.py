"""Shared route dependencies and query parameters."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Query, Request

from runner.server.auth.principal import Principal
from runner.server.auth.verify import Verifier, authenticate, client_address
from runner.server.db import Database
from runner.server.services.common import DEFAULT_LIMIT, MAX_LIMIT


def get_db(request: Request) -> Database:
    db: Database = request.app.state.db
    return db


def get_verifier(request: Request) -> Verifier:
    verifier: Verifier = request.app.state.auth
    return verifier


Db = Annotated[Database, Depends(get_db)]
#: the caller (``runner.server.auth.verify.authenticate``): 401/403 before the route runs.
Who = Annotated[Principal, Depends(authenticate)]
Auth = Annotated[Verifier, Depends(get_verifier)]
#: the caller's network address (rate limits, audit events).
Address = Annotated[str | None, Depends(client_address)]
Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description="page size")]
Offset = Annotated[int, Query(ge=0, description="rows to skip")]
DEFAULT = DEFAULT_LIMIT
