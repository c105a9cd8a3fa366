"""The published API description: FastAPI's, plus every error answer of each operation.

FastAPI lists the 200s and the 422 of parameters it validates; the rest of what an
operation can answer comes from how the server works, and is added here so that
clients (and schema fuzzing: suites/api/test_fuzz.py) can rely on the document:

- 401 / 403 on every operation that needs a token (the gate: runner/server/gate.py;
  403 for a token whose scope does not allow the operation);
- 404 on operations that name a row (a path id, ids in the body, or an id among the
  query's filters: ``/stats/history?app_id=`` of an app that is not the caller's);
- 409 on operations that write (a forbidden transition, a name taken, a race);
- 413 on every operation (the gate's body limit);
- 422 on every operation that takes parameters or a body.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from runner.server.gate import api_routes, needs_caller
from runner.server.routes import body

ERROR = "#/components/schemas/Error"
VALIDATION = "#/components/schemas/HTTPValidationError"
WRITES = {"post", "put", "patch", "delete"}

#: status -> what it means, for the descriptions.
MEANING = {
    401: "no token, or an invalid or expired one",
    403: "the token does not allow this operation",
    404: "a row it names does not exist (or belongs to another user)",
    409: "conflicts with the current state (a forbidden transition, a name taken)",
    413: "request body over the server's limit",
    422: "invalid parameters or body; `detail` lists each field with its path",
}


def document(app: FastAPI) -> dict[str, Any]:
    doc = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    for name, schema in body.EXTRA_SCHEMAS.items():
        schemas.setdefault(name, schema)
    schemas["Error"] = {
        "title": "Error",
        "type": "object",
        "properties": {"detail": {"title": "Detail", "type": "string"}},
        "required": ["detail"],
    }
    schemas.setdefault("HTTPValidationError", _validation_schema())
    schemas.setdefault("ValidationError", _validation_item())
    protected = {
        (path, method.lower())
        for path, route in api_routes(app.routes)
        if needs_caller(route)
        for method in route.methods or ()
    }
    for path, item in doc.get("paths", {}).items():
        for method, op in item.items():
            if method not in {"get", "head", *WRITES}:
                continue
            _add_errors(path, method, op, (path, method) in protected)
    return doc


def _add_errors(path: str, method: str, op: dict[str, Any], protected: bool) -> None:
    responses = op.setdefault("responses", {})
    codes = [413]
    takes_input = bool(op.get("parameters")) or "requestBody" in op
    if protected:
        codes += [401, 403]
        names_row = any(
            p.get("in") == "query" and (p.get("name") == "id" or str(p.get("name", "")).endswith("_id"))
            for p in op.get("parameters", ())
        )
        if "{" in path or method in WRITES or names_row:
            codes.append(404)
    elif path == "/users/login":
        codes.append(401)
    if method in WRITES:
        codes.append(409)
    if takes_input:
        codes.append(422)
    for code in sorted(codes):
        ref = VALIDATION if code == 422 else ERROR
        responses.setdefault(
            str(code),
            {"description": MEANING[code], "content": {"application/json": {"schema": {"$ref": ref}}}},
        )


def _validation_item() -> dict[str, Any]:
    return {
        "title": "ValidationError",
        "type": "object",
        "properties": {
            "loc": {
                "title": "Location",
                "type": "array",
                "items": {"anyOf": [{"type": "string"}, {"type": "integer"}]},
            },
            "msg": {"title": "Message", "type": "string"},
            "type": {"title": "Error Type", "type": "string"},
        },
        "required": ["loc", "msg", "type"],
    }


def _validation_schema() -> dict[str, Any]:
    return {
        "title": "HTTPValidationError",
        "type": "object",
        "properties": {
            "detail": {
                "title": "Detail",
                "type": "array",
                "items": {"$ref": "#/components/schemas/ValidationError"},
            }
        },
    }
