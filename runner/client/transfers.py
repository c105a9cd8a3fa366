"""``client.transfers``: the stage-in and stage-out items of jobs."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from runner.client._base import Manager, _chunks, _encode_list
from runner.models import MAX_BULK, Page, TransferDirection, TransferItem, TransferItemUpdate, TransferState


class TransferManager(Manager):
    """``client.transfers``: stage-in/stage-out items of jobs (driven by the site agent)."""

    path = "/transfers"

    def filter(
        self,
        *,
        site_id: int | None = None,
        job_id: int | Sequence[int] | None = None,
        state: TransferState | str | None = None,
        direction: TransferDirection | str | None = None,
        limit: int | None = None,
    ) -> list[TransferItem]:
        params = dict(site_id=site_id, job_id=job_id, state=state, direction=direction)
        return self._follow(TransferItem, params, limit)

    def page(
        self,
        *,
        site_id: int | None = None,
        job_id: int | Sequence[int] | None = None,
        state: TransferState | str | None = None,
        direction: TransferDirection | str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> Page[TransferItem]:
        params = dict(
            site_id=site_id, job_id=job_id, state=state, direction=direction, limit=limit, offset=offset
        )
        return self._page(TransferItem, params)

    def bulk_update(self, updates: Iterable[TransferItemUpdate | Mapping[str, Any]]) -> list[TransferItem]:
        out: list[TransferItem] = []
        for chunk in _chunks(list(updates), MAX_BULK):
            out.extend(
                self._send(
                    "PATCH", list[TransferItem], self.path, raw=_encode_list(TransferItemUpdate, chunk)
                )
            )
        return out
