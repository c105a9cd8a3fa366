"""Shared plumbing of the managers: cached TypeAdapters, paging, bulk encoding.

Answers are parsed straight from the response bytes into the pydantic models of
``runner.models`` with cached ``TypeAdapter``s (one pass in pydantic-core, no
intermediate dicts), which keeps the launcher's hot path (acquire, bulk_update) cheap.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from functools import cache
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel, TypeAdapter

from runner.client._http import encode_json
from runner.models import Page

if TYPE_CHECKING:
    from runner.client._http import HTTP

M = TypeVar("M")


@cache
def adapter(tp: Any) -> TypeAdapter[Any]:
    """A cached TypeAdapter (building one costs far more than using it)."""
    return TypeAdapter(tp)


def _parse(tp: Any, content: bytes) -> Any:
    return adapter(tp).validate_json(content)


def _changes(**fields: Any) -> dict[str, Any]:
    """Only the fields the caller gave (None means: leave unchanged)."""
    return {k: v for k, v in fields.items() if v is not None}


class Manager:
    """Shared plumbing: request, parse, follow pages."""

    path: str = ""

    def __init__(self, http: HTTP) -> None:
        self._http = http

    def _get_one(self, model: type[M], path: str) -> M:
        resp = self._http.request("GET", path)
        result: M = _parse(model, resp.content)
        return result

    def _send(
        self,
        method: str,
        model: Any,
        path: str,
        body: Any = None,
        raw: bytes | None = None,
        *,
        resend_after_timeout: bool = False,
    ) -> Any:
        resp = self._http.request(
            method, path, body=body, raw_body=raw, resend_after_timeout=resend_after_timeout
        )
        return _parse(model, resp.content)

    def _page(self, model: type[M], params: Mapping[str, Any]) -> Page[M]:
        resp = self._http.request("GET", self.path, params=params)
        page: Page[M] = _parse(Page[model], resp.content)  # type: ignore[valid-type]
        return page

    def _follow(self, model: type[M], params: Mapping[str, Any], limit: int | None) -> list[M]:
        """Every matching row (at most ``limit``), ``page_size`` rows per request."""
        out: list[M] = []
        offset = 0
        while limit is None or len(out) < limit:
            size = self._http.page_size
            want = size if limit is None else min(size, limit - len(out))
            page = self._page(model, {**params, "limit": want, "offset": offset})
            out.extend(page.results)
            offset += len(page.results)
            if not page.results or offset >= page.count:
                break
        return out

    def _delete(self, path: str) -> None:
        self._http.request("DELETE", path)


def _chunks(items: Sequence[M], size: int) -> Iterable[Sequence[M]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _encode_list(model: type[BaseModel], items: Sequence[Any]) -> bytes:
    """JSON for a list of models and/or dicts, without re-validating the models."""
    if all(isinstance(i, model) for i in items):
        out: bytes = adapter(list[model]).dump_json(list(items), exclude_unset=True)  # type: ignore[valid-type]
        return out
    return encode_json(
        [i.model_dump(mode="json", exclude_unset=True) if isinstance(i, BaseModel) else i for i in items]
    )
