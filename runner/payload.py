"""Python objects as text: cloudpickled, then base64 (functions, arguments, results of
python-function jobs travel in JSON this way). The apps pack them, the client unpacks
a job's result; this module imports nothing of tolu, so both may use it."""

from __future__ import annotations

import base64
from typing import Any

import cloudpickle


def dumps(obj: Any) -> str:
    return base64.b64encode(cloudpickle.dumps(obj)).decode("ascii")


def loads(text: str) -> Any:
    return cloudpickle.loads(base64.b64decode(text))
