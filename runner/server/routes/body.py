"""Request bodies parsed by pydantic-core straight from bytes (hot-path routes).

FastAPI's default path decodes JSON with the standard library and then validates
Python objects; for a 10,000-job body, ``TypeAdapter.validate_json`` does both in
one Rust pass. Errors keep FastAPI's shape (422, ``loc`` starting with ``"body"``).
The schema still shows in OpenAPI via ``openapi_body``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from pydantic import TypeAdapter, ValidationError

from runner.models import NUL_FREE

T = TypeVar("T")

#: model name -> JSON schema, added to the OpenAPI components by app.py.
EXTRA_SCHEMAS: dict[str, Any] = {}
REF = "#/components/schemas/{model}"


def json_body(tp: Any) -> Callable[[Request], Awaitable[Any]]:
    adapter: TypeAdapter[Any] = TypeAdapter(tp)

    async def parse(request: Request) -> Any:
        raw = await request.body()
        # JSON can carry a NUL only as the escape \u0000: without one, the models'
        # per-field NUL check has nothing to find (models.no_nul)
        context = NUL_FREE if b"\\u0000" not in raw else None
        try:
            return adapter.validate_json(raw, context=context)
        except ValidationError as exc:
            errors = exc.errors(include_url=False)
            raise RequestValidationError([{**e, "loc": ("body", *e["loc"])} for e in errors]) from None

    return parse


def openapi_body(tp: Any, description: str, *, max_items: int | None = None) -> dict[str, Any]:
    """The ``openapi_extra`` of a route whose body ``json_body`` parses: its schema, and
    ``max_items`` for a list whose length the service limits (the route's 422 beyond it)."""
    schema = TypeAdapter(tp).json_schema(ref_template=REF)
    EXTRA_SCHEMAS.update(schema.pop("$defs", {}))
    if max_items is not None:
        schema["maxItems"] = max_items
    return {
        "requestBody": {
            "required": True,
            "description": description,
            "content": {"application/json": {"schema": schema}},
        }
    }
