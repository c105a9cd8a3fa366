from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Query
from starlette.responses import Response

from runner import models
from runner.server.errors import json_response
from runner.server.routes.deps import DEFAULT, Db, Limit, Offset, Who
from runner.server.services import transfers

router = APIRouter(prefix="/transfers", tags=["transfers"])


#: at most MAX_BULK (a 422 beyond it, and ``maxItems`` in /openapi.json)
Updates = Annotated[list[models.TransferItemUpdate], Body(max_length=models.MAX_BULK)]


@router.get("", response_model=models.Page[models.TransferItem])
def list_transfers(
    who: Who,
    db: Db,
    site_id: models.Id32 | None = None,
    job_id: Annotated[list[models.Id] | None, Query()] = None,
    state: models.TransferState | None = None,
    direction: models.TransferDirection | None = None,
    limit: Limit = DEFAULT,
    offset: Offset = 0,
) -> Response:
    with db.read() as conn:
        return json_response(
            transfers.filter(
                conn,
                who,
                site_id=site_id,
                job_id=job_id,
                state=state.value if state else None,
                direction=direction.value if direction else None,
                limit=limit,
                offset=offset,
            )
        )


@router.patch("", response_model=list[models.TransferItem])
def bulk_update(body: Updates, who: Who, db: Db) -> Response:
    with db.write() as conn:
        return json_response(transfers.bulk_update(conn, who, body))
