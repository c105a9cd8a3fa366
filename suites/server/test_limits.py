"""Hostile input: integers beyond 64 bits, NUL characters, huge bodies, no token.

Issue 16, defects 5 and 6, on SQLite and PostgreSQL: each is a 4xx naming the field
(never a 500), authentication comes before any body is read, and a body over the
limit is refused from its length, before it is buffered.
"""

from __future__ import annotations

import enum
import types
import typing
from datetime import datetime
from typing import Any

import pytest
from server_helpers import Raw, SiteApp, send_head

from runner.client import Client
from runner.models import PARAMETERS_MAX_BYTES, JobReport, JobUpdate, Request
from runner.server.gate import MAX_BODY_BYTES

BIG = 2**64 + 1


def _locs(resp: Any) -> list[list[Any]]:
    return [e["loc"] for e in resp.json()["detail"]]


@pytest.mark.parametrize(
    ("method", "path", "body", "loc"),
    [
        ("GET", f"/jobs/{BIG}", None, ["path", "job_id"]),
        ("PATCH", f"/jobs/{BIG}", {}, ["path", "job_id"]),
        ("DELETE", f"/jobs/{BIG}", None, ["path", "job_id"]),
        ("GET", f"/jobs?offset={BIG}", None, ["query", "offset"]),
        ("GET", f"/jobs?app_id={BIG}", None, ["query", "app_id"]),
        ("GET", f"/jobs/counts?id={BIG}", None, ["query", "id", 0]),
        ("GET", f"/events?job_id={BIG}", None, ["query", "job_id", 0]),
        ("GET", f"/sites/{BIG}", None, ["path", "site_id"]),
        ("GET", f"/apps?site_id={BIG}", None, ["query", "site_id"]),
        ("POST", f"/sessions/{BIG}/heartbeat", None, ["path", "session_id"]),
        ("GET", f"/stats/history?batch_job_id={BIG}", None, ["query", "batch_job_id"]),
        ("POST", "/auth/tokens", {"name": "t", "scope": "site", "site_id": BIG}, ["body", "site_id"]),
        ("DELETE", f"/auth/tokens/{BIG}", None, ["path", "token_id"]),
        ("POST", "/jobs", [{"app_id": 2**31}], ["body", 0, "app_id"]),
        ("GET", f"/sites/{2**31}", None, ["path", "site_id"]),
        ("PATCH", "/jobs", [{"id": 1, "return_code": BIG}], ["body", 0, "return_code"]),
        ("POST", "/runs", {"site_id": 1, "document": {"n": BIG}}, ["body", "document"]),
        ("PATCH", "/jobs", [{"id": BIG}], ["body", 0, "id"]),
        ("POST", "/sessions", {"site_id": BIG}, ["body", "site_id"]),
        ("POST", "/batch-jobs", {"site_id": BIG, "num_nodes": 1, "wall_time_min": 1}, ["body", "site_id"]),
        # the fuzzer found these as 500s once it stopped revoking its own token: DAGs,
        # DAG runs, runs and sites have 32-bit ids on PostgreSQL
        ("GET", f"/dags/{2**31}", None, ["path", "dag_id"]),
        ("GET", f"/dag-runs/{2**31}", None, ["path", "run_id"]),
        ("POST", "/runs", {"site_id": 2**31}, ["body", "site_id"]),
        ("GET", f"/dags/{BIG}", None, ["path", "dag_id"]),
        ("POST", f"/dag-runs/{BIG}/kill", None, ["path", "run_id"]),
        ("DELETE", f"/dags/{BIG}", None, ["path", "dag_id"]),
        ("POST", "/dags/1/runs", {"instances": [{}], "site_id": BIG}, ["body", "site_id"]),
        ("POST", "/dags", {"name": "d", "site_id": BIG, "nodes": []}, ["body", "site_id"]),
        ("POST", "/runs", {"site_id": BIG}, ["body", "site_id"]),
        ("GET", f"/dags?site_id={BIG}", None, ["query", "site_id"]),
        ("GET", f"/dag-runs?dag_id={BIG}", None, ["query", "dag_id"]),
        ("GET", f"/dag-runs/{BIG}", None, ["path", "run_id"]),
        ("GET", f"/dag-runs/{BIG}/status", None, ["path", "run_id"]),
        ("GET", f"/dag-runs/1/status?instance={BIG}", None, ["query", "instance"]),
        ("POST", f"/dag-runs/1/kill?instance={BIG}", None, ["query", "instance"]),
        ("GET", f"/auth/audit?user_id={BIG}", None, ["query", "user_id"]),
    ],
)
def test_integers_beyond_64_bits_are_422_naming_the_field(
    raw: Raw, method: str, path: str, body: Any, loc: list[Any]
) -> None:
    resp = raw(method, path, json=body)
    assert resp.status_code == 422, resp.text
    assert loc in _locs(resp), resp.text


def test_nul_characters_are_422_naming_the_field(raw: Raw, site_app: SiteApp, tolu_client: Client) -> None:
    session = tolu_client.sessions.create(site_app.site.id).id
    cases: list[tuple[str, str, Any, list[Any]]] = [
        ("POST", "/sites", {"name": "a\x00b", "path": "/x", "hostname": "h"}, ["body", "name"]),
        ("PATCH", f"/sites/{site_app.site.id}", {"hostname": "h\x00"}, ["body", "hostname"]),
        ("POST", "/jobs", [{"app_id": site_app.app.id, "tags": {"run": "a\x00"}}], ["body", 0, "tags"]),
        ("POST", "/jobs", [{"app_id": site_app.app.id, "parameters": {"x\x00": 1}}],
            ["body", 0, "parameters"]),
        ("GET", "/jobs?tags=run:a%00b", None, ["query", "tags"]),
        ("GET", "/apps?name=a%00b", None, ["query", "name"]),
        ("GET", "/sites?name=a%00b", None, ["query", "name"]),
        ("GET", "/stats/history?tags=run:a%00b", None, ["query", "tags"]),
        # every query parameter, whatever its route declares (the fuzzer found these)
        ("GET", "/runs/trends?scenario=a%00b", None, ["query", "scenario"]),
        ("GET", "/runs?limit=5&location=%00", None, ["query", "location"]),
        ("GET", "/runs/matrix?area=x&commit=ab%00", None, ["query", "commit"]),
        # the launchers' per-job models check only their fields that can hold text
        ("PATCH", "/jobs", [{"id": 1, "state": "RUNNING", "state_data": {"a": "b\x00"}}],
            ["body", 0, "state_data"]),
        ("PATCH", "/jobs", [{"id": 1, "tags": {"a": "b\x00"}}], ["body", 0, "tags"]),
        ("POST", f"/sessions/{session}/reports",
            [{"id": 1, "attempt": 0, "state": "RUN_ERROR", "timestamp": "2026-01-01T00:00:00Z",
              "state_data": {"tail": "x\x00"}}], ["body", 0, "state_data"]),
        ("POST", f"/sessions/{session}/reports",
            [{"id": 1, "attempt": 0, "state": "RUN_DONE", "timestamp": "2026-01-01T00:00:00Z",
              "data": {"k": ["a\x00"]}}], ["body", 0, "data"]),
    ]
    before = tolu_client.jobs.count()
    for method, path, body, loc in cases:
        resp = raw(method, path, json=body)
        assert resp.status_code == 422, (path, resp.text)
        assert loc in _locs(resp), (path, resp.text)
        assert "NUL" in resp.text
    assert tolu_client.jobs.count() == before
    assert tolu_client.sites.get(site_app.site.id).hostname != "h\x00"
    # the OAuth endpoints read forms: their own error shape (RFC 6749)
    resp = raw("POST", "/auth/token", data={"grant_type": "refresh_token", "refresh_token": "a\x00"})
    assert resp.status_code == 400 and resp.json()["error"] == "invalid_request", resp.text
    assert "NUL" in resp.json()["error_description"], resp.text


def _can_hold_text(annotation: Any) -> bool:
    """Whether a value of this type can carry a string (a nested Request checks its own)."""
    if annotation in (int, float, bool, datetime, type(None)):
        return False
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum | Request):
        return False
    args = typing.get_args(annotation)
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _can_hold_text(args[0])
    if origin in (typing.Union, types.UnionType):
        return any(_can_hold_text(a) for a in args)
    return True  # str, Any, containers


@pytest.mark.parametrize("model", [JobReport, JobUpdate])
def test_every_field_of_a_per_job_model_that_can_hold_text_is_checked_for_nul(model: type[Request]) -> None:
    """JobReport and JobUpdate name the fields their NUL check covers (it runs per report):
    a field added later that can hold text must be among them."""
    checked = set(model.__pydantic_decorators__.field_validators["_no_nul"].info.fields)
    text = {name for name, f in model.model_fields.items() if _can_hold_text(f.annotation)}
    assert text and text <= checked, sorted(text - checked)


def test_a_job_parameter_larger_than_the_limit_is_refused(raw: Raw, site_app: SiteApp) -> None:
    big = {"app_id": site_app.app.id, "parameters": {"x": "y" * PARAMETERS_MAX_BYTES}}
    resp = raw("POST", "/jobs", json=[big])
    assert resp.status_code == 422 and ["body", 0, "parameters"] in _locs(resp), resp.text


def test_no_token_is_401_before_the_body_is_read(tolu_client: Client) -> None:
    """A 400 MB body announced, a few bytes sent: 401 at once (the body is never read)."""
    head = (
        "POST /jobs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Content-Length: {400 << 20}\r\n"
    )
    status, _ = send_head(tolu_client.url, head, b"[{junk")
    assert status == 401
    junk = (
        "POST /jobs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 6\r\n"
    )
    assert send_head(tolu_client.url, junk, b"[{junk")[0] == 401  # not 422: who asks comes first


def test_a_body_over_the_limit_is_413_before_it_is_read(tolu_client: Client) -> None:
    head = (
        "POST /jobs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Authorization: Bearer {tolu_client.token}\r\nContent-Length: {MAX_BODY_BYTES + 1}\r\n"
    )
    status, rest = send_head(tolu_client.url, head, b"[")
    assert status == 413, rest


def test_a_chunked_body_over_the_limit_is_413_while_reading(raw: Raw) -> None:
    sent = 0
    chunk = b" " * (1 << 20)

    def body() -> Any:
        nonlocal sent
        while sent <= MAX_BODY_BYTES + (4 << 20):
            sent += len(chunk)
            yield chunk

    try:
        resp = raw("POST", "/jobs", data=body(), headers={"Content-Type": "application/json"})
    except Exception as exc:  # the server may close the connection before we stop sending
        pytest.fail(f"no answer: {exc}")
    assert resp.status_code == 413, resp.text[:300]


def test_the_api_description_lists_every_error_answer(tolu_client: Client) -> None:
    import requests

    doc = requests.get(tolu_client.url + "/openapi.json", timeout=30).json()
    resources = ("/sites", "/apps", "/jobs", "/events", "/transfers", "/batch-jobs", "/sessions", "/users/me")
    for path, item in doc["paths"].items():
        for method, op in item.items():
            codes = set(op["responses"])
            assert "413" in codes, (method, path)
            if op.get("parameters") or "requestBody" in op:
                assert "422" in codes, (method, path, codes)
            if path.startswith(resources):
                assert {"401", "403"} <= codes, (method, path, codes)
                if "{" in path:
                    assert "404" in codes, (method, path)
                if method in ("post", "patch", "delete"):
                    assert {"404", "409"} <= codes, (method, path)
    assert doc["components"]["schemas"]["Error"]["required"] == ["detail"]
