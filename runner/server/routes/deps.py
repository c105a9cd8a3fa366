"""Shared route dependencies and query parameters."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Query, Request

from runner.server.auth import Principal, principal
from runner.server.db import Database
from runner.server.services.common import DEFAULT_LIMIT, MAX_LIMIT


def get_db(request: Request) -> Database:
    db: Database = request.app.state.db
    return db


Db = Annotated[Database, Depends(get_db)]
Who = Annotated[Principal, Depends(principal)]
Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description="page size")]
Offset = Annotated[int, Query(ge=0, description="rows to skip")]
DEFAULT = DEFAULT_LIMIT
