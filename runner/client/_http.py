"""The HTTP layer: one pooled ``requests.Session``, its retries, typed errors.

Retries are urllib3's, mounted through requests' ``HTTPAdapter``; which requests are
sent again, and why, is ``runner.client._retry``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import date, datetime
from enum import Enum
from typing import Any
from urllib.parse import quote

import requests
from pydantic import BaseModel
from requests.adapters import HTTPAdapter
from urllib3.exceptions import ReadTimeoutError

from runner.client._retry import GaveUp, RetryPolicy, log
from runner.client.auth import Credential, StaticCredential
from runner.client.errors import APIError, TransportError, error_for_status
from runner.client.urls import check_url, connection_hint

#: query-string value types: scalars, or lists of them (repeated keys).
Params = Mapping[str, Any]


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", exclude_unset=True)
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    raise TypeError(f"cannot send {type(value).__name__} as JSON")


def encode_json(body: Any) -> bytes:
    """Serialize a request body: models (exclude_unset), dicts, lists of either."""
    if isinstance(body, BaseModel):
        return body.model_dump_json(exclude_unset=True).encode()
    return json.dumps(body, default=_json_default, separators=(",", ":")).encode()


def _param_value(value: Any) -> str:
    if isinstance(value, Enum):
        return str(value.value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def encode_params(params: Params | None) -> list[tuple[str, str]]:
    """Query string pairs; None is skipped, iterables repeat the key, ``tags`` dicts become k:v."""
    out: list[tuple[str, str]] = []
    for key, value in (params or {}).items():
        if value is None:
            continue
        if isinstance(value, Mapping):
            out.extend((key, f"{k}:{v}") for k, v in value.items())
        elif isinstance(value, str | bytes) or not isinstance(value, Iterable):
            out.append((key, _param_value(value)))
        else:
            out.extend((key, _param_value(v)) for v in value)
    return out


def _detail(resp: requests.Response) -> Any:
    try:
        body = resp.json()
    except ValueError:
        text = resp.text.strip()
        return text[:500] if text else resp.reason
    if isinstance(body, dict) and "detail" in body:
        return body["detail"]
    return body


class HTTP:
    """Sends requests to one server; shared by all managers of a Client."""

    def __init__(
        self,
        url: str,
        token: str | None = None,
        *,
        timeout: float = 30.0,
        retries: int = 5,
        backoff: float = 0.25,
        max_backoff: float = 8.0,
        pool_size: int = 10,
        page_size: int = 5_000,
    ) -> None:
        self.url = check_url(url)
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        #: rows per request when a manager's ``filter()`` follows pages.
        self.page_size = page_size
        self.session = requests.Session()
        adapter = HTTPAdapter(
            pool_connections=pool_size,
            pool_maxsize=pool_size,
            max_retries=RetryPolicy.of(retries, backoff, max_backoff),
        )
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self.session.headers["Accept"] = "application/json"
        self.session.headers["User-Agent"] = "tolu-client"
        # The environment's proxy for this server (NO_PROXY included) and CA bundle, read
        # once: requests would read them, and ~/.netrc, again at every request, a fifth of
        # the CPU a launcher's request costs its client.
        env = self.session.merge_environment_settings(self.url, {}, None, None, None)
        self.session.proxies = env["proxies"]
        self.session.verify = env["verify"]
        self.session.trust_env = False
        #: supplies (and renews) the access token of each request; runner.client.auth.
        self.credential: Credential | None = StaticCredential(token) if token else None

    @property
    def token(self) -> str | None:
        """The current access token (None: not logged in)."""
        access = self.credential.current if self.credential else None
        return access.token if access else None

    @token.setter
    def token(self, value: str | None) -> None:
        self.credential = StaticCredential(value) if value else None

    def close(self) -> None:
        self.session.close()

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Params | None = None,
        body: Any = None,
        raw_body: bytes | None = None,
        timeout: float | None = None,
        resend_after_timeout: bool = False,
    ) -> requests.Response:
        """Send one request (retried as ``runner.client._retry`` says); raise typed errors.

        ``resend_after_timeout``: the caller knows that applying the request twice changes
        nothing (a create whose every job carries an idempotency key), so a read timeout is
        retried too, like the other transient errors, up to ``retries`` more times.
        """
        for attempt in range(self.retries + 1):
            try:
                return self._request(method, path, params, body, raw_body, timeout)
            except TransportError as exc:
                if not (resend_after_timeout and exc.timed_out) or attempt == self.retries:
                    raise
                log.warning("%s %s: no answer in time; sending it again (idempotent)", method, path)
        raise AssertionError("unreachable")

    def _request(
        self,
        method: str,
        path: str,
        params: Params | None,
        body: Any,
        raw_body: bytes | None,
        timeout: float | None,
    ) -> requests.Response:
        """One request with the credential's access token; a 401 answer makes the credential
        renew once and the request go again, so an expired access token never reaches the
        caller while the login or token behind it is valid."""
        data = raw_body if raw_body is not None else (None if body is None else encode_json(body))
        headers = {"Content-Type": "application/json"} if data is not None else {}
        credential = self.credential
        token = credential.access_token(self) if credential else None
        if token:
            headers["Authorization"] = f"Bearer {token}"
        try:
            return self._send(method, path, params, data, headers, timeout)
        except APIError as exc:
            if exc.status != 401 or credential is None or not credential.renew(self, token):
                raise
            fresh = credential.access_token(self)
            if not fresh or fresh == token:
                raise
        headers["Authorization"] = f"Bearer {fresh}"
        return self._send(method, path, params, data, headers, timeout)

    def post_form(self, path: str, form: Mapping[str, str]) -> Any:
        """POST a form (OAuth endpoints), without the credential; the JSON answer.

        An OAuth error answer raises the typed error with ``oauth_error`` set to its code.
        """
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        data = "&".join(f"{quote(k)}={quote(v)}" for k, v in form.items()).encode()
        return self._send("POST", path, None, data, headers, None).json()

    def _send(
        self,
        method: str,
        path: str,
        params: Params | None,
        data: bytes | None,
        headers: dict[str, str],
        timeout: float | None,
    ) -> requests.Response:
        url = self.url + path
        try:
            resp = self.session.request(
                method,
                url,
                params=encode_params(params),
                data=data,
                headers=headers,
                timeout=timeout if timeout is not None else self.timeout,
            )
        except (GaveUp, requests.exceptions.RequestException) as exc:
            attempts = exc.attempts if isinstance(exc, GaveUp) else 1
            cause = exc.reason if isinstance(exc, GaveUp) else exc
            reason = connection_hint(self.url, str(exc)) or _short(exc)
            raise TransportError(
                f"cannot reach the tolu server at {self.url}: {reason}"
                + (f" (after {attempts} attempts)" if attempts > 1 else ""),
                method=method,
                url=url,
                attempts=attempts,
                timed_out=isinstance(cause, ReadTimeoutError | requests.exceptions.ReadTimeout),
            ) from None
        stranger = _not_tolu(resp)
        if stranger:
            raise error_for_status(
                resp.status_code if resp.status_code >= 400 else 502,
                f"{method} {url} answered {stranger}: is this a tolu server? "
                "(check the URL: a tolu server answers GET /health)",
                method=method,
                url=url,
            )
        if resp.status_code >= 400:
            error = error_for_status(resp.status_code, _detail(resp), method=method, url=url)
            error.oauth_error = _oauth_error(resp)
            error.retry_after = resp.headers.get("Retry-After")
            raise error
        return resp


def _oauth_error(resp: requests.Response) -> str | None:
    try:
        body = resp.json()
    except ValueError:
        return None
    code = body.get("error") if isinstance(body, dict) else None
    return code if isinstance(code, str) else None


def _not_tolu(resp: requests.Response) -> str:
    """How an answer shows it does not come from a tolu route ("" when it may): a body that
    is not JSON, or FastAPI's bare 404 for a path the server has no route for (tolu's own
    404s name what was not found)."""
    if resp.status_code == 204 or not resp.content:
        return ""
    kind = resp.headers.get("Content-Type", "").split(";")[0].strip()
    if kind != "application/json":
        return f"HTTP {resp.status_code} with {kind or 'a body that is not JSON'}"
    if resp.status_code == 404 and _detail(resp) == "Not Found":
        return "404 Not Found (no such path)"
    return ""


def _short(exc: BaseException) -> str:
    """A one-line reason out of requests' nested exception text."""
    text = str(exc)
    for marker in (
        "Connection refused",
        "Name or service not known",
        "timed out",
        "Connection reset",
        "Remote end closed connection",
        "Connection aborted",
    ):
        if marker in text:
            return marker.lower() if marker != "Connection refused" else "connection refused"
    return text if len(text) < 200 else text[:200] + "..."
