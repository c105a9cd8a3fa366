"""Bad input gets a 4xx naming the field, and changes nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
import requests
from server_helpers import Raw, SiteApp

from runner.client import Client
from runner.client.errors import ServerError
from runner.models import MAX_BULK
from runner.server import faults
from runner.server.process import ServerProcess


def _locs(resp: Any) -> list[list[Any]]:
    return [e["loc"] for e in resp.json()["detail"]]


def _totals(client: Client) -> tuple[int, int]:
    return client.jobs.count(), client.events.page(limit=1).count


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        pytest.param(b"[{", ["body"], id="malformed-json"),
        pytest.param(b"", ["body"], id="empty-body"),
        pytest.param(b'{"app_id": 1}', ["body"], id="object-not-list"),
        pytest.param(
            b'[{"app_id": "APP", "retry_limit": "many"}]', ["body", 0, "retry_limit"], id="wrong-type"
        ),
        pytest.param(b'[{"app_id": "APP", "colour": "red"}]', ["body", 0, "colour"], id="unknown-field"),
        pytest.param(
            b'[{"app_id": "APP", "resources": {"num_nodes": 0}}]',
            ["body", 0, "resources", "num_nodes"],
            id="out-of-range",
        ),
        pytest.param(
            b'[{"app_id": "APP"}, {"app_id": "APP", "parents": ["nope"]}]',
            ["body", 1, "parents", 0],
            id="unknown-key",
        ),
        pytest.param(
            b'[{"app_id": "APP", "parents": [999999999]}]', ["body", 0, "parents", 0], id="unknown-parent"
        ),
        pytest.param(
            b'[{"app_id": "APP", "key": "a", "parents": ["a"]}]', ["body", 0, "parents", 0], id="self-parent"
        ),
        pytest.param(
            b'[{"app_id": "APP", "key": "a", "parents": ["c"]},'
            b' {"app_id": "APP", "key": "b", "parents": ["a"]},'
            b' {"app_id": "APP", "key": "c", "parents": ["b"]}, {"app_id": "APP"}]',
            None,
            id="cycle",
        ),
        pytest.param(
            b'[{"app_id": "APP", "key": "a"}, {"app_id": "APP", "key": "a"}]',
            ["body", 1, "key"],
            id="duplicate-key",
        ),
        pytest.param(b'[{"app_id": 999999999}]', ["body", 0, "app_id"], id="unknown-app"),
    ],
)
def test_bad_job_creation_is_422_and_writes_nothing(
    tolu_client: Client, raw: Raw, site_app: SiteApp, body: bytes, loc: list[Any] | None
) -> None:
    tolu_client.jobs.bulk_create([{"app_id": site_app.app.id}])
    before = _totals(tolu_client)
    resp = raw(
        "POST",
        "/jobs",
        data=body.replace(b'"APP"', str(site_app.app.id).encode()),
        headers={"content-type": "application/json"},
    )
    assert resp.status_code == 422, resp.text
    if loc is None:  # a cycle names one of its members' parents, and the path
        (err,) = resp.json()["detail"]
        assert err["loc"][:1] == ["body"] and err["loc"][2] == "parents"
        assert "cycle" in err["msg"] and "a" in err["msg"] and "c" in err["msg"]
    else:
        assert loc in _locs(resp), resp.text
    assert _totals(tolu_client) == before


def test_oversize_bulk_is_refused(tolu_client: Client, raw: Raw, site_app: SiteApp) -> None:
    before = _totals(tolu_client)
    body = orjson.dumps([{"app_id": site_app.app.id}] * (MAX_BULK + 1))
    resp = raw("POST", "/jobs", data=body, headers={"content-type": "application/json"})
    assert resp.status_code == 422
    assert _locs(resp) == [["body"]] and str(MAX_BULK) in resp.json()["detail"][0]["msg"]
    resp = raw(
        "PATCH",
        "/jobs",
        data=orjson.dumps([{"id": 1}] * (MAX_BULK + 1)),
        headers={"content-type": "application/json"},
    )
    assert resp.status_code == 422
    session = tolu_client.sessions.create(site_app.site.id)
    report = {"id": 1, "attempt": 0, "state": "RUNNING", "timestamp": "2026-01-01T00:00:00Z"}
    resp = raw(
        "POST",
        f"/sessions/{session.id}/reports",
        data=orjson.dumps([report] * (MAX_BULK + 1)),
        headers={"content-type": "application/json"},
    )
    assert resp.status_code == 422 and str(MAX_BULK) in resp.json()["detail"][0]["msg"]
    for path in ("/transfers", "/batch-jobs"):
        resp = raw("PATCH", path, json=[{"id": 1}] * (MAX_BULK + 1))
        assert resp.status_code == 422 and _locs(resp) == [["body"]], path
        assert str(MAX_BULK) in resp.json()["detail"][0]["msg"], path
    assert _totals(tolu_client) == before
    # the published API says so: a generated client or a schema fuzzer keeps to the limit
    doc = raw("GET", "/openapi.json").json()
    bulk = [("post", "/jobs"), ("patch", "/jobs"), ("post", "/sessions/{session_id}/reports")]
    for method, path in [*bulk, ("patch", "/transfers"), ("patch", "/batch-jobs")]:
        schema = doc["paths"][path][method]["requestBody"]["content"]["application/json"]["schema"]
        assert schema["type"] == "array" and schema["maxItems"] == MAX_BULK, (method, path)
    node = doc["components"]["schemas"]["DagNode"]["properties"]
    assert node["parents"]["maxItems"] == node["transfers"]["maxItems"] == MAX_BULK


def test_bad_updates_are_refused_and_change_nothing(tolu_client: Client, raw: Raw, site_app: SiteApp) -> None:
    (job,) = tolu_client.jobs.bulk_create([{"app_id": site_app.app.id, "tags": {"a": "1"}}])
    cases = [
        ([{"id": job.id, "state": "SLEEPING"}], 422, ["body", 0, "state"]),
        ([{"id": job.id, "tags": {"a": 1}}], 422, ["body", 0, "tags", "a"]),
        ([{"id": job.id, "sate": "RUNNING"}], 422, ["body", 0, "sate"]),
        ([{"state": "RUNNING"}], 422, ["body", 0, "id"]),
        ([{"id": job.id, "tags": {"b": "2"}}, {"id": 999999999, "state": "RUNNING"}], 404, None),
    ]
    for body, status, loc in cases:
        resp = raw("PATCH", "/jobs", json=body)
        assert resp.status_code == status, (body, resp.text)
        if loc is not None:
            assert loc in _locs(resp), resp.text
    after = tolu_client.jobs.get(job.id)
    assert after.tags == {"a": "1"} and after.state == job.state


@pytest.mark.parametrize(
    ("method", "path", "body", "loc"),
    [
        ("POST", "/sites", {"name": "x", "path": "/x"}, ["body", "hostname"]),
        ("POST", "/sites", {"name": "x", "path": "/x", "hostname": "h", "extra": 1}, ["body", "extra"]),
        (
            "POST",
            "/apps",
            {"site_id": "SITE", "name": "bad name!", "command_template": "true"},
            ["body", "name"],
        ),
        (
            "POST",
            "/apps",
            {"site_id": "SITE", "name": "shell", "kind": "shell"},
            ["body", "command_template"],
        ),
        (
            "POST",
            "/apps",
            {"site_id": "SITE", "name": "twice", "command_template": "true", "hooks": ["preprocess"] * 2},
            ["body", "hooks"],
        ),
        (
            "POST",
            "/apps",
            {"site_id": "SITE", "name": "many", "command_template": "true", "hooks": ["preprocess"] * 5},
            ["body", "hooks"],
        ),
        (
            "POST",
            "/batch-jobs",
            {"site_id": "SITE", "num_nodes": 0, "wall_time_min": 5},
            ["body", "num_nodes"],
        ),
        ("POST", "/sessions", {"site_id": "SITE", "ttl_sec": -1}, ["body", "ttl_sec"]),
        ("POST", "/users/register", {"username": "x y", "password": "long-enough"}, ["body", "username"]),
    ],
)
def test_other_resources_name_the_bad_field(
    raw: Raw, site_app: SiteApp, method: str, path: str, body: dict[str, Any], loc: list[Any]
) -> None:
    body = {k: (site_app.site.id if v == "SITE" else v) for k, v in body.items()}
    resp = raw(method, path, json=body)
    assert resp.status_code == 422, resp.text
    assert loc in _locs(resp), resp.text


def test_bad_query_parameters(raw: Raw) -> None:
    assert raw("GET", "/jobs", params={"state": "NOPE"}).status_code == 422
    assert raw("GET", "/jobs", params={"limit": 0}).status_code == 422
    assert raw("GET", "/jobs", params={"tags": "no-colon"}).status_code == 422
    assert raw("GET", "/jobs", params={"ordering": "password"}).status_code == 422
    resp = raw("DELETE", "/jobs")
    assert resp.status_code == 422 and "filter" in resp.text


def test_auth_errors(tolu_client: Client, raw: Raw) -> None:
    resp = raw.session.get(raw.url + "/jobs", headers={"Authorization": "Bearer not-a-token"})
    assert resp.status_code == 401
    resp = raw.session.get(raw.url + "/jobs", headers={"Authorization": ""})
    assert resp.status_code == 401
    resp = raw.session.post(
        raw.url + "/users/login", json={"username": tolu_client.username, "password": "wrong-password"}
    )
    assert resp.status_code == 401
    assert raw("GET", "/health").json()["status"] == "ok"


def test_a_server_bug_is_answered_500_in_json_and_logged_with_its_traceback(tmp_path: Path) -> None:
    """An exception no handler expects (here raised on purpose by the server's test mode)
    is answered 500 with a JSON detail the client shows, not text/plain that it took
    for another server's, and its traceback goes to the server's log."""
    log = tmp_path / "server.log"
    with ServerProcess(tmp_path / "data", log_path=log, env={faults.ENV: "1"}) as server:
        Client.register(server.url, "alice", "s3cret-pass")
        alice = Client.login(server.url, "alice", "s3cret-pass").clone(retries=0)
        for wrong in ({"status": 503}, {"status": 500, "after": True}):  # a bug answers 500, and answers
            switch = {"seconds": 9, "raise": True, **wrong}
            bad = requests.put(f"{server.url}/_test/faults", json=switch, timeout=10)
            assert bad.status_code == 422 and "raise:" in bad.text, bad.text
        spec = {"status": 500, "seconds": 600, "paths": ["/jobs"], "raise": True}
        requests.put(f"{server.url}/_test/faults", json=spec, timeout=10).raise_for_status()
        with pytest.raises(ServerError) as caught:
            alice.jobs.count()
        assert caught.value.status == 500
        assert "internal server error (InjectedError)" in str(caught.value), caught.value
        assert "is this a tolu server" not in str(caught.value)
        assert alice.sites.filter() == []  # the server goes on answering
    text = log.read_text()
    assert "ERROR tolu.server: unexpected error answering GET /jobs" in text
    assert "runner.server.faults.InjectedError: fault injected by the server's test mode" in text
    assert "Exception in ASGI application" not in text  # answered, not left to uvicorn
