"""The device side of a device-code login (RFC 8628): show the code, poll until approved.

One loop serves tolu's own device login (``tolu login --device``) and an identity
provider's (``tolu login --sso``): only the endpoints differ. The loop waits
``interval`` seconds between polls, adds 5 seconds at each ``slow_down`` (section
3.5), and ends with the tokens, or with one clear ``DeviceLoginError``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import requests

from runner.client.errors import APIError, ToluError, TransportError, error_for_status

DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
SLOW_DOWN_STEP_SEC = 5.0

#: posts a form to a token endpoint: the JSON answer, or APIError with ``oauth_error``.
PostForm = Callable[[Mapping[str, str]], Any]
#: shown to the person: (verification URL, user code, the URL with the code filled in).
Show = Callable[[str, str, str], None]


class DeviceLoginError(ToluError):
    """A device login ended without tokens: denied, expired, or refused."""


@dataclass(frozen=True)
class DeviceGrant:
    device_code: str
    user_code: str
    verification_uri: str
    verification_uri_complete: str
    expires_in: float
    interval: float

    @classmethod
    def parse(cls, body: Mapping[str, Any]) -> DeviceGrant:
        uri = str(body.get("verification_uri") or body.get("verification_url") or "")
        return cls(
            device_code=str(body["device_code"]),
            user_code=str(body["user_code"]),
            verification_uri=uri,
            verification_uri_complete=str(body.get("verification_uri_complete") or uri),
            expires_in=float(body.get("expires_in") or 600),
            interval=float(body.get("interval") or 5),
        )


def poll(
    post: PostForm,
    grant: DeviceGrant,
    *,
    client_id: str | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> dict[str, Any]:
    """Poll the token endpoint until the code is approved; the token answer."""
    interval = grant.interval
    deadline = clock() + grant.expires_in
    form = {"grant_type": DEVICE_GRANT, "device_code": grant.device_code}
    if client_id:
        form["client_id"] = client_id
    while True:
        sleep(interval)
        try:
            answer: dict[str, Any] = post(form)
            return answer
        except APIError as exc:
            code = exc.oauth_error
            if code == "authorization_pending":
                pass
            elif code == "slow_down":
                interval += SLOW_DOWN_STEP_SEC
            elif code == "access_denied":
                raise DeviceLoginError("the login was denied") from None
            elif code == "expired_token":
                raise DeviceLoginError(
                    "the code expired before it was approved; run the login again"
                ) from None
            else:
                raise DeviceLoginError(f"the login failed: {exc}") from None
        if clock() > deadline:
            raise DeviceLoginError("the code expired before it was approved; run the login again")


def post_form_to(url: str, *, timeout: float = 30.0) -> PostForm:
    """A PostForm for an endpoint outside tolu (an identity provider's)."""

    def post(form: Mapping[str, str]) -> Any:
        try:
            resp = requests.post(
                url, data=dict(form), timeout=timeout, headers={"Accept": "application/json"}
            )
        except requests.RequestException as exc:
            raise TransportError(f"cannot reach {url}: {exc}", method="POST", url=url) from None
        try:
            body = resp.json()
        except ValueError:
            body = {"detail": resp.text[:300]}
        if resp.status_code >= 400:
            detail = body.get("error_description") or body.get("error") or body
            error = error_for_status(resp.status_code, detail, method="POST", url=url)
            error.oauth_error = body.get("error") if isinstance(body.get("error"), str) else None
            raise error
        return body

    return post


def provider_metadata(issuer: str, *, timeout: float = 30.0) -> dict[str, Any]:
    """An identity provider's discovery document (it must offer the device flow)."""
    url = issuer.rstrip("/") + "/.well-known/openid-configuration"
    try:
        resp = requests.get(url, timeout=timeout)
        resp.raise_for_status()
        meta: dict[str, Any] = resp.json()
    except (requests.RequestException, ValueError) as exc:
        raise TransportError(
            f"cannot read the identity provider's {url}: {exc}", method="GET", url=url
        ) from None
    if "device_authorization_endpoint" not in meta:
        raise DeviceLoginError(f"the identity provider {issuer} offers no device login (RFC 8628)")
    return meta
