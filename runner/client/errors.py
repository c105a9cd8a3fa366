"""Typed errors of the tolu client.

Transient and fatal problems are different types: a :class:`TransportError` means the
server could not be reached even after the retries (try again later); an
:class:`APIError` means the server answered and said no (fix the request). Every error
carries the server's own message, so ``str(exc)`` is what a person needs to read.

::

    ToluError
    ├── ConfigError          credentials file missing or unreadable
    ├── TransportError       connection refused/reset/timed out after the retries
    ├── WaitTimeout          jobs.wait() ran out of time (lists the stuck jobs)
    ├── JobsFailed           jobs.wait() saw FAILED/KILLED jobs (each with its reason and output)
    ├── JobFailed            a job handle's .result(): the job failed (reason, traceback, output)
    └── APIError             the server answered 4xx/5xx: .status, .detail
        ├── AuthError        401/403
        ├── NotFound         404 (also another user's id)
        ├── Conflict         409 (forbidden transition, duplicate name)
        ├── InvalidRequest   400/413/422; .errors lists FieldError(path, msg)
        └── ServerError      5xx still failing after the retries
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

#: the password login's path (its 401 means: wrong username or password).
LOGIN_PATH = "/users/login"


class ToluError(Exception):
    """Base of every error the tolu client raises."""


class ConfigError(ToluError):
    """The credentials file is missing, unreadable or incomplete."""


class TransportError(ToluError):
    """The server could not be reached (after the retries)."""

    def __init__(
        self, message: str, *, method: str = "", url: str = "", attempts: int = 1, timed_out: bool = False
    ) -> None:
        super().__init__(message)
        self.method = method
        self.url = url
        self.attempts = attempts
        #: the request was sent and no answer came in time: it may have been applied.
        self.timed_out = timed_out


class JobsFailed(ToluError):
    """``jobs.wait()``: some jobs ended FAILED or KILLED.

    ``.failed`` holds those jobs, ``.outputs`` maps each id to its output file and
    ``.failures`` says why each failed (``runner.client.failures.Failure``: reason,
    output path, output tail, traceback of a python job).
    """

    def __init__(
        self, message: str, failed: list[Any], outputs: dict[int, str], failures: list[Any] | None = None
    ) -> None:
        super().__init__(message)
        self.failed = failed
        self.outputs = outputs
        self.failures = failures or []


class WaitTimeout(ToluError):
    """``jobs.wait()`` gave up; ``.pending`` maps each unfinished job id to its state."""

    def __init__(self, message: str, pending: dict[int, str]) -> None:
        super().__init__(message)
        self.pending = pending


@dataclass(frozen=True)
class FieldError:
    """One problem in a rejected request: where (``loc``) and what (``msg``)."""

    loc: tuple[str | int, ...]
    msg: str
    type: str = ""

    @property
    def path(self) -> str:
        """The location as a dotted path, e.g. ``body.3.parents.0``."""
        return ".".join(str(p) for p in self.loc)

    def __str__(self) -> str:
        return f"{self.path}: {self.msg}" if self.loc else self.msg


class APIError(ToluError):
    """The server answered with an error status; ``str(exc)`` is its message."""

    def __init__(self, status: int, detail: Any, *, method: str = "", url: str = "") -> None:
        self.status = status
        self.detail = detail
        self.method = method
        self.url = url
        #: the OAuth error code of an /auth answer (``slow_down``, ``invalid_grant``...), else None.
        self.oauth_error: str | None = None
        #: the ``Retry-After`` header of a 429/503 answer, else None.
        self.retry_after: str | None = None
        super().__init__(self._message())

    def _message(self) -> str:
        if isinstance(self.detail, str) and self.detail:
            return self.detail
        if self.detail in (None, "", [], {}):
            return f"HTTP {self.status} from {self.method} {self.url}".strip()
        return str(self.detail)


class AuthError(APIError):
    """401/403: missing, bad or expired token, or a wrong password."""

    def _message(self) -> str:
        base = super()._message()
        if self.status != 401:
            return base
        if self.url.endswith(LOGIN_PATH):
            # the login itself was refused: "log in again" would send the user in a circle
            return f"{base} (check both; `tolu register` creates an account)"
        if "login" not in base.lower():
            base += " (log in again: `tolu login`)"
        return base


class NotFound(APIError):
    """404: no such row, or it belongs to another user."""


class Conflict(APIError):
    """409: a transition the life cycle forbids, or a duplicate name."""


class ServerError(APIError):
    """5xx: the server failed and kept failing through the retries."""


class InvalidRequest(APIError):
    """400/413/422: the request was rejected and nothing was written.

    ``.errors`` holds one :class:`FieldError` per problem with its field path
    (``body.3.parents.0``), as the server reported it.
    """

    def __init__(self, status: int, detail: Any, *, method: str = "", url: str = "") -> None:
        self.errors: list[FieldError] = _field_errors(detail)
        super().__init__(status, detail, method=method, url=url)

    def _message(self) -> str:
        if not self.errors:
            return super()._message()
        shown = "; ".join(str(e) for e in self.errors[:3])
        more = f" (+{len(self.errors) - 3} more)" if len(self.errors) > 3 else ""
        return f"invalid request: {shown}{more}"

    @property
    def paths(self) -> list[str]:
        """The dotted field paths of all problems."""
        return [e.path for e in self.errors]


def _field_errors(detail: Any) -> list[FieldError]:
    if isinstance(detail, str):
        return [FieldError((), detail)]
    if not isinstance(detail, Sequence):
        return []
    out = []
    for item in detail:
        if isinstance(item, dict):
            loc = tuple(item.get("loc") or ())
            out.append(FieldError(loc, str(item.get("msg", "")), str(item.get("type", ""))))
        else:
            out.append(FieldError((), str(item)))
    return out


def error_for_status(status: int, detail: Any, *, method: str = "", url: str = "") -> APIError:
    """The typed error for an HTTP error answer."""
    cls: type[APIError]
    if status in (401, 403):
        cls = AuthError
    elif status == 404:
        cls = NotFound
    elif status == 409:
        cls = Conflict
    elif status in (400, 413, 422):
        cls = InvalidRequest
    elif status >= 500:
        cls = ServerError
    else:
        cls = APIError
    return cls(status, detail, method=method, url=url)
