"""When the client sends a request again: urllib3's ``Retry`` plus one rule of ours.

Why retry at all: a launcher must ride out a server restart; why not more: a rejected
request must not become a storm. urllib3 does the work (counting, exponential
backoff with jitter, ``Retry-After``); the policy is:

- connection errors are retried for every method: refused, DNS, connect timeout (the
  request never left), and a connection dropped under it (a restarted server closes
  the pooled keep-alive connections);
- 5xx answers are retried for every method (a bulk request is one transaction: a 500
  rolled it back, a 502/503 from a proxy never reached tolu), and so are 413/429/503
  answers that carry ``Retry-After``, after the time it asks for, unless that is longer
  than the longest backoff (a login locked for minutes answers at once);
- a read timeout is retried only for GET, because a POST or PATCH that timed out
  may already have been applied. urllib3 has one switch (``allowed_methods``) for
  read errors and 5xx alike, so this rule is the override below
  (suites/api/test_transport.py pins each case). The one exception is the caller's to
  make: a job create whose every job carries an idempotency key is sent again after a
  timeout (``HTTP.request(resend_after_timeout=True)``), since the server answers known
  keys with the existing jobs;
- other 4xx answers are never retried.
"""

from __future__ import annotations

import logging
from types import TracebackType
from typing import TYPE_CHECKING, Self

from urllib3.exceptions import MaxRetryError, ReadTimeoutError
from urllib3.util.retry import Retry

if TYPE_CHECKING:
    from urllib3.connectionpool import ConnectionPool
    from urllib3.response import BaseHTTPResponse

log = logging.getLogger("runner.client")

#: methods sent again after a read timeout: sending them twice changes nothing.
RESENT_AFTER_TIMEOUT = frozenset({"GET"})


class GaveUp(Exception):
    """No answer after ``attempts`` tries; ``reason`` is the last error (urllib3's).

    Raised out of ``requests`` untouched (it wraps only urllib3's own errors), so the
    HTTP layer knows how many attempts were made.
    """

    def __init__(self, attempts: int, reason: Exception) -> None:
        super().__init__(str(reason))
        self.attempts = attempts
        self.reason = reason


class RetryPolicy(Retry):
    """``Retry(total=retries)`` with the policy of this module."""

    @classmethod
    def of(cls, retries: int, backoff: float, max_backoff: float) -> RetryPolicy:
        """``retries`` more attempts; waits: at once, then ``backoff``·2ⁿ (+ up to ``backoff``
        of jitter), at most ``max_backoff`` seconds."""
        return cls(
            total=retries,
            allowed_methods=None,  # every method, for 5xx and dropped connections
            status_forcelist=range(500, 600),
            backoff_factor=backoff,
            backoff_jitter=backoff,
            backoff_max=max_backoff,
            raise_on_status=False,  # the last 5xx answer comes back: ServerError with its detail
        )

    def increment(
        self,
        method: str | None = None,
        url: str | None = None,
        response: BaseHTTPResponse | None = None,
        error: Exception | None = None,
        _pool: ConnectionPool | None = None,
        _stacktrace: TracebackType | None = None,
    ) -> Self:
        attempts = len(self.history) + 1
        if isinstance(error, ReadTimeoutError) and (method or "").upper() not in RESENT_AFTER_TIMEOUT:
            raise GaveUp(attempts, error)
        if response is not None and error is None and response.status in self.RETRY_AFTER_STATUS_CODES:
            wait = self.get_retry_after(response)
            if wait is not None and wait > self.backoff_max:
                # e.g. a login locked for minutes: the answer (429 and its reason) comes back now
                raise MaxRetryError(_pool, url or "", None)  # type: ignore[arg-type]
        try:
            retry = super().increment(method, url, response, error, _pool, _stacktrace)
        except MaxRetryError:
            if error is None:
                raise  # a 5xx answer: urllib3 hands back the last response (raise_on_status=False)
            raise GaveUp(attempts, error) from None
        reason = f"HTTP {response.status}" if error is None and response is not None else error
        log.warning("%s %s: %s; retrying (%d left)", method, url, reason, retry.total)
        return retry
