"""The launchers' three requests (heartbeat, acquire, reports), answered by the server's
hot path (runner/server/hotpath.py) outside FastAPI's routing: what they do and every
refusal are what the API documents for the routes, on a real server over HTTP."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
import requests
from auth_helpers import exchange
from server_helpers import Raw, SiteApp, send_head

from runner.client import Client
from runner.models import INT32_MAX, Job, ReportResult, Session
from runner.server.gate import MAX_BODY_BYTES

REPORT = {"id": 1, "attempt": 0, "state": "RUNNING", "timestamp": "2026-01-01T00:00:00Z"}


def _held(client: Client, site_app: SiteApp) -> list[int | None]:
    return [j.session_id for j in client.jobs.filter(app_id=site_app.app.id)]


def test_the_launchers_requests_do_what_the_api_says(
    tolu_client: Client, raw: Raw, site_app: SiteApp
) -> None:
    (job,) = tolu_client.jobs.bulk_create([{"app_id": site_app.app.id}])
    s = tolu_client.sessions.create(site_app.site.id)
    beat = raw("POST", f"/sessions/{s.id}/heartbeat", data=b"ignored")  # a heartbeat has no body
    assert beat.status_code == 200 and beat.headers["content-type"] == "application/json", beat.text
    assert Session.model_validate(beat.json()).expires_at >= s.expires_at
    got = raw(
        "POST",
        f"/sessions/{s.id}/acquire",
        data=b'{"max_num_jobs": 5, "serial_only": true}',
        headers={"content-type": "application/json; charset=utf-8"},
    )
    assert got.status_code == 200, got.text
    assert [Job.model_validate(j).id for j in got.json()] == [job.id]
    report = {**REPORT, "id": job.id, "attempt": got.json()[0]["attempt"]}
    done = raw("POST", f"/sessions/{s.id}/reports", json=[report, {**report, "attempt": 99}])
    assert done.status_code == 200, done.text
    result = ReportResult.model_validate(done.json())
    assert result.accepted == 1 and [m.id for m in result.moot] == [job.id]
    assert tolu_client.jobs.get(job.id).state.value == "RUNNING"


@pytest.mark.parametrize(
    ("operation", "body", "headers", "loc"),
    [
        pytest.param("acquire", b'{"max_num_jobs": "many"}', {}, ["body", "max_num_jobs"], id="wrong-type"),
        pytest.param("acquire", b'{"max_num_jobs": 1, "colour": 1}', {}, ["body", "colour"], id="unknown"),
        pytest.param("acquire", b'{"max_num_jobs": 0}', {}, ["body", "max_num_jobs"], id="out-of-range"),
        pytest.param("acquire", b"{", {}, ["body", 1], id="malformed-json"),
        pytest.param("acquire", b"", {}, ["body"], id="empty-body"),
        pytest.param("acquire", b"[]", {}, ["body"], id="list-not-object"),
        pytest.param(
            "acquire", b'{"max_num_jobs": 1}', {"content-type": "text/plain"}, ["body"], id="not-json-type"
        ),
        pytest.param("acquire", b'{"max_num_jobs": 1}', {"content-type": ""}, ["body"], id="no-type"),
        pytest.param("reports", b"{}", {}, ["body"], id="object-not-list"),
        pytest.param(
            "reports", orjson.dumps([{**REPORT, "state": "SLEEPING"}]), {}, ["body", 0, "state"], id="state"
        ),
        pytest.param(
            "reports",
            orjson.dumps([REPORT, {**REPORT, "timestamp": "yesterday"}]),
            {},
            ["body", 1, "timestamp"],
            id="second-report",
        ),
        pytest.param(
            "reports",
            orjson.dumps([{**REPORT, "run_started": REPORT["timestamp"]}]),
            {},
            ["body", 0, "run_started"],
            id="start-on-running",
        ),
    ],
)
def test_a_bad_body_is_fastapis_422_naming_the_field_and_changes_nothing(
    tolu_client: Client,
    raw: Raw,
    site_app: SiteApp,
    operation: str,
    body: bytes,
    headers: dict[str, str],
    loc: list[Any],
) -> None:
    tolu_client.jobs.bulk_create([{"app_id": site_app.app.id}] * 2)
    s = tolu_client.sessions.create(site_app.site.id)
    headers = {"content-type": "application/json", **headers}
    resp = raw("POST", f"/sessions/{s.id}/{operation}", data=body, headers=headers)
    assert resp.status_code == 422, resp.text
    assert loc in [e["loc"] for e in resp.json()["detail"]], resp.text
    assert _held(tolu_client, site_app) == [None, None]


@pytest.mark.parametrize("operation", ["heartbeat", "acquire", "reports"])
def test_who_and_which_session_come_before_the_body(
    tolu_client: Client, raw: Raw, site_app: SiteApp, operation: str
) -> None:
    tolu_client.jobs.bulk_create([{"app_id": site_app.app.id}])
    s = tolu_client.sessions.create(site_app.site.id)
    url = f"{tolu_client.url}/sessions/{s.id}/{operation}"
    anonymous = requests.post(url, data=b"[{junk", timeout=30)
    assert anonymous.status_code == 401 and anonymous.headers["www-authenticate"] == "Bearer"
    body = b"[]" if operation == "reports" else b'{"max_num_jobs": 1}'
    json = {"content-type": "application/json"}
    gone = raw("POST", f"/sessions/{s.id + 1000}/{operation}", data=body, headers=json)
    assert gone.status_code == 404 and "session" in gone.json()["detail"], gone.text
    nul = requests.post(f"{url}?x=%00", data=body, headers=json, timeout=30)
    assert nul.status_code == 401, nul.text  # who asks, then the gate's NUL check
    nul = raw("POST", f"/sessions/{s.id}/{operation}?x=%00", data=body, headers=json)
    assert nul.status_code == 422 and nul.json()["detail"][0]["loc"] == ["query", "x"], nul.text
    beyond = raw("POST", f"/sessions/{INT32_MAX + 1}/{operation}", data=body, headers=json)
    assert beyond.status_code == 422 and beyond.json()["detail"][0]["loc"] == ["path", "session_id"]
    assert _held(tolu_client, site_app) == [None]


@pytest.mark.parametrize("operation", ["heartbeat", "acquire", "reports"])
def test_no_token_is_401_before_a_large_body_is_read(
    tolu_client: Client, site_app: SiteApp, operation: str
) -> None:
    """A 400 MB body announced, a few bytes sent: 401 at once, as the gate answers."""
    s = tolu_client.sessions.create(site_app.site.id)
    head = (
        f"POST /sessions/{s.id}/{operation} HTTP/1.1\r\nHost: x\r\n"
        f"Content-Type: application/json\r\nContent-Length: {400 << 20}\r\n"
    )
    status, rest = send_head(tolu_client.url, head, b"[{junk")
    assert status == 401 and "www-authenticate: bearer" in rest.lower(), rest


def test_a_read_only_or_revoked_token_is_refused_and_changes_nothing(
    tolu_client: Client, raw: Raw, site_app: SiteApp
) -> None:
    tolu_client.jobs.bulk_create([{"app_id": site_app.app.id}])
    s = tolu_client.sessions.create(site_app.site.id)
    reader = exchange(tolu_client.url, tolu_client.account.create_token("reader", scope="read").token)

    def post_as(token: str, operation: str, body: bytes) -> requests.Response:
        headers = {"Authorization": f"Bearer {token}", "content-type": "application/json"}
        return requests.post(
            f"{tolu_client.url}/sessions/{s.id}/{operation}", data=body, headers=headers, timeout=30
        )

    ask = b'{"max_num_jobs": 5}'
    for operation, body in [("heartbeat", b""), ("acquire", ask), ("reports", b"[]")]:
        resp = post_as(reader, operation, body)
        assert resp.status_code == 403 and "read-only" in resp.json()["detail"], resp.text
    made = tolu_client.account.create_token("launcher")
    launcher = exchange(tolu_client.url, made.token)
    tolu_client.account.revoke(made.id)  # its access token is refused from its next request on
    resp = post_as(launcher, "acquire", ask)
    assert resp.status_code == 401 and "revoked" in resp.json()["detail"], resp.text
    assert _held(tolu_client, site_app) == [None]


def test_a_chunked_report_over_the_limit_is_413_while_reading(
    tolu_client: Client, raw: Raw, site_app: SiteApp
) -> None:
    s = tolu_client.sessions.create(site_app.site.id)
    chunk = b" " * (1 << 20)

    def body() -> Any:
        sent = 0
        while sent <= MAX_BODY_BYTES + (4 << 20):
            sent += len(chunk)
            yield chunk

    resp = raw("POST", f"/sessions/{s.id}/reports", data=body(), headers={"Content-Type": "application/json"})
    assert resp.status_code == 413 and "larger than" in resp.json()["detail"], resp.text[:300]
