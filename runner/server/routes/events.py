from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query
from starlette.responses import Response

from runner import models
from runner.server.errors import json_response
from runner.server.routes.deps import DEFAULT, Db, Limit, Offset, Who
from runner.server.services import events
from runner.states import JobState

router = APIRouter(prefix="/events", tags=["events"])


@router.get("", response_model=models.Page[models.Event])
def list_events(
    who: Who,
    db: Db,
    job_id: Annotated[list[models.Id] | None, Query()] = None,
    site_id: models.Id32 | None = None,
    to_state: Annotated[list[JobState] | None, Query()] = None,
    from_state: Annotated[list[JobState] | None, Query()] = None,
    after: datetime | None = None,
    before: datetime | None = None,
    ordering: Annotated[str | None, Query(description="id, timestamp; prefix - to reverse")] = None,
    limit: Limit = DEFAULT,
    offset: Offset = 0,
) -> Response:
    with db.read() as conn:
        return json_response(
            events.filter(
                conn,
                who,
                job_id=job_id,
                site_id=site_id,
                to_state=to_state,
                from_state=from_state,
                after=after,
                before=before,
                ordering=ordering,
                limit=limit,
                offset=offset,
            )
        )
