"""A published document checked against the JSON Schema of its kind, and its digest.

The check runs before anything is written, outside any transaction (a full suite's
report.json is megabytes); a failure is a 422 whose ``loc`` is the path inside the
document (``["body", "document", "tests", 3, "outcome"]``), as for any other field.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from functools import cache
from importlib import resources
from typing import Any

import jsonschema
import orjson

from runner.models import RunKind
from runner.server.errors import Invalid

SCHEMA_FILES: dict[str, str] = {
    "tests": "report.schema.json",
    "bench": "bench.schema.json",
    "pipeline": "pipeline.schema.json",
}
#: schema errors named in one answer (a document that is wrong everywhere would list thousands).
MAX_ERRORS = 20
#: characters of a schema error's message (it may quote a large part of the document).
MESSAGE_CHARS = 300


@cache
def schema(kind: RunKind) -> dict[str, Any]:
    """The JSON Schema of a ``kind`` of document (read on first use, not at import)."""
    text = resources.files(__package__).joinpath("schemas", SCHEMA_FILES[kind]).read_text()
    loaded: dict[str, Any] = json.loads(text)
    return loaded


@cache
def _validator(kind: RunKind) -> Any:
    document_schema = schema(kind)
    cls = jsonschema.validators.validator_for(document_schema)
    return cls(document_schema)


def check(kind: RunKind, document: dict[str, Any]) -> None:
    """Raise Invalid (422) naming each place where ``document`` breaks its schema."""
    errors = list(itertools.islice(_validator(kind).iter_errors(document), MAX_ERRORS))
    if not errors:
        return
    errors.sort(key=lambda e: [str(p) for p in e.absolute_path])
    raise Invalid(
        [
            {
                "loc": ["body", "document", *e.absolute_path],
                "msg": f"{_short(e.message)} ({SCHEMA_FILES[kind]}: {'/'.join(map(str, e.schema_path))})",
                "type": "schema",
            }
            for e in errors
        ]
    )


def digest(document: dict[str, Any]) -> str:
    """SHA-256 of the document's canonical JSON (keys sorted): equal documents, equal digests."""
    return hashlib.sha256(orjson.dumps(document, option=orjson.OPT_SORT_KEYS)).hexdigest()


def _short(message: str) -> str:
    return message if len(message) <= MESSAGE_CHARS else message[: MESSAGE_CHARS - 3] + "..."
