"""Every endpoint x every kind of credential -> the answer it must get (imported by tests).

An owner builds a *world* (two sites; in the first an app, a job with a stage-in
transfer, a batch job, a session, a DAG and a run of it; a token). Then each credential calls every
endpoint on the world's objects, and the answer's status must be the one its
profile promises. Afterwards the owner's rows must be exactly as they were for
every credential that may not change them: 0 objects readable or changeable.

Profiles (what a credential is allowed):

- ``owner``: the owner's full login (password or SSO): everything but admin;
- ``read``: the owner's read-only token: reads, nothing else (403);
- ``own_site``: the owner's token of the first site: that site's rows, no account;
- ``other_site``: the owner's token of the second site: the first site's rows are 404;
- ``stranger``: another account: the owner's rows are 404, lists hold none of them;
- ``refused``: revoked or expired: 401 everywhere.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import requests
import run_documents

PROFILES = ("owner", "read", "own_site", "other_site", "stranger", "refused")


@dataclass
class World:
    site: int
    other_site: int
    app: int
    job: int
    transfer: int
    batch_job: int
    session: int
    token: int
    owner_id: int
    run: int
    dag: int
    dag_run: int


class Caller:
    def __init__(self, url: str, token: str) -> None:
        self.url = url
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {token}"

    def __call__(self, method: str, path: str, body: Any = None) -> requests.Response:
        return self.session.request(method, self.url + path, json=body, timeout=60)

    def ok(self, method: str, path: str, body: Any = None) -> Any:
        resp = self(method, path, body)
        assert resp.status_code < 300, f"{method} {path}: {resp.status_code} {resp.text}"
        return resp.json() if resp.content else None


def build_world(owner: Caller) -> World:
    tag = uuid.uuid4().hex[:8]
    site = owner.ok("POST", "/sites", {"name": f"a-{tag}", "path": "/tmp/a", "hostname": "h"})["id"]
    other = owner.ok("POST", "/sites", {"name": f"b-{tag}", "path": "/tmp/b", "hostname": "h"})["id"]
    app = owner.ok(
        "POST",
        "/apps",
        {"site_id": site, "name": "echo", "command_template": "echo {x}", "parameters": {"x": "1"}},
    )["id"]
    (job,) = owner.ok(
        "POST",
        "/jobs",
        [
            {
                "app_id": app,
                "tags": {"w": tag},
                "transfers": [{"direction": "in", "source": "l:/a", "destination": "a"}],
            }
        ],
    )
    transfer = owner.ok("GET", f"/transfers?job_id={job['id']}")["results"][0]["id"]
    batch = owner.ok("POST", "/batch-jobs", {"site_id": site, "num_nodes": 1, "wall_time_min": 5})["id"]
    session = owner.ok("POST", "/sessions", {"site_id": site})["id"]
    token = owner.ok("POST", "/auth/tokens", {"name": f"t-{tag}", "scope": "read"})["id"]
    me = owner.ok("GET", "/users/me")["id"]
    run = owner.ok("POST", "/runs", _run_body(site))["id"]
    dag = owner.ok("POST", "/dags", _dag_body(site))["id"]
    dag_run = owner.ok("POST", f"/dags/{dag}/runs", {"instances": [{}]})["id"]
    return World(site, other, app, job["id"], transfer, batch, session, token, me, run, dag, dag_run)


def _run_body(site: int) -> dict[str, Any]:
    """A published integration run (the smallest document) with a fresh run id."""
    run_id = f"run-{uuid.uuid4().hex[:8]}"
    return run_documents.envelope(site, "pipeline", run_documents.pipeline(run_id))


def _dag_body(site: int) -> dict[str, Any]:
    """A two-node DAG of the world's app ``echo``, under a new name."""
    nodes = [
        {"name": "first", "app": "echo", "parameters": {"x": "{instance}"}},
        {"name": "second", "app": "echo", "parents": ["first"]},
    ]
    return {"name": f"d-{uuid.uuid4().hex[:8]}", "site_id": site, "nodes": nodes}


def snapshot(owner: Caller, w: World) -> dict[str, Any]:
    """The owner's rows of the world, as the owner reads them (what must not change)."""
    volatile = {"last_heartbeat", "heartbeat", "expires_at", "updated_at", "last_used_at"}

    def clean(row: Any) -> Any:
        return {k: v for k, v in row.items() if k not in volatile} if isinstance(row, dict) else row

    return {
        "site": clean(owner.ok("GET", f"/sites/{w.site}")),
        "app": clean(owner.ok("GET", f"/apps/{w.app}")),
        "job": clean(owner.ok("GET", f"/jobs/{w.job}")),
        "jobs": owner.ok("GET", f"/jobs?site_id={w.site}")["count"],
        "transfers": [clean(r) for r in owner.ok("GET", f"/transfers?job_id={w.job}")["results"]],
        "batch_job": clean(owner.ok("GET", f"/batch-jobs/{w.batch_job}")),
        "sessions": [r["id"] for r in owner.ok("GET", "/sessions")["results"]],
        "tokens": sorted(t["id"] for t in owner.ok("GET", "/auth/tokens")),
        "runs": sorted(r["id"] for r in owner.ok("GET", "/runs")["results"]),
        "dag": clean(owner.ok("GET", f"/dags/{w.dag}")),
        "dag_run": owner.ok("GET", f"/dag-runs/{w.dag_run}/status?detail=true"),
    }


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str
    #: owner, read, own_site, other_site, stranger -> the expected status ("refused" is always 401)
    expect: dict[str, int]
    body: Callable[[World], Any] | None = None
    #: for lists: the ids the answer must not contain for other_site/stranger
    foreign_ids: Callable[[World], set[int]] | None = None

    def url(self, w: World) -> str:
        return self.path.format(w=w)

    @property
    def name(self) -> str:
        return f"{self.method} {self.path.replace('{w.', '{')}"


def _e(
    method: str, path: str, owner: int, read: int, own_site: int, other_site: int, stranger: int, **kw: Any
) -> Endpoint:
    expect = {
        "owner": owner,
        "read": read,
        "own_site": own_site,
        "other_site": other_site,
        "stranger": stranger,
    }
    return Endpoint(method, path, expect, **kw)


def _ids(page: Any) -> set[int]:
    rows = page["results"] if isinstance(page, dict) and "results" in page else page
    return {int(r["id"] if "id" in r else r["site_id"]) for r in rows}  # site cards name their site


def endpoints() -> list[Endpoint]:
    """Every route of the API, reads first, deletions last (each on the world's objects)."""
    site_rows = lambda w: {w.site}  # noqa: E731
    return [
        _e("GET", "/users/me", 200, 200, 200, 200, 200),
        _e("GET", "/sites", 200, 200, 200, 200, 200, foreign_ids=site_rows),
        _e("GET", "/sites/{w.site}", 200, 200, 200, 404, 404),
        _e("GET", "/apps", 200, 200, 200, 200, 200, foreign_ids=lambda w: {w.app}),
        _e("GET", "/apps/{w.app}", 200, 200, 200, 404, 404),
        _e("GET", "/jobs", 200, 200, 200, 200, 200, foreign_ids=lambda w: {w.job}),
        _e("GET", "/jobs/counts", 200, 200, 200, 200, 200),
        _e("GET", "/jobs/{w.job}", 200, 200, 200, 404, 404),
        _e("GET", "/events", 200, 200, 200, 200, 200),
        _e("GET", "/transfers", 200, 200, 200, 200, 200, foreign_ids=lambda w: {w.transfer}),
        _e("GET", "/batch-jobs", 200, 200, 200, 200, 200, foreign_ids=lambda w: {w.batch_job}),
        _e("GET", "/batch-jobs/{w.batch_job}", 200, 200, 200, 404, 404),
        _e("GET", "/sessions", 200, 200, 200, 200, 200, foreign_ids=lambda w: {w.session}),
        _e("GET", "/stats/sites", 200, 200, 200, 200, 200, foreign_ids=site_rows),
        _e("GET", "/stats/history?site_id={w.site}", 200, 200, 200, 404, 404),
        _e("GET", "/stats/history?batch_job_id={w.batch_job}", 200, 200, 200, 404, 404),
        _e("GET", "/stats/history?app_id={w.app}", 200, 200, 200, 404, 404),
        _e("GET", "/auth/tokens", 200, 200, 403, 403, 200, foreign_ids=lambda w: {w.token}),
        _e("GET", "/auth/audit", 200, 200, 403, 403, 200),
        _e("GET", "/admin/users", 403, 403, 403, 403, 403),
        _e("GET", "/runs", 200, 200, 200, 200, 200, foreign_ids=lambda w: {w.run}),
        _e("GET", "/runs/{w.run}", 200, 200, 200, 404, 404),
        _e("GET", "/runs/{w.run}/document", 200, 200, 200, 404, 404),
        _e("GET", "/runs/matrix", 200, 200, 200, 200, 200),
        _e("GET", "/runs/scenarios", 200, 200, 200, 200, 200),
        _e("GET", "/runs/trends?scenario=throughput:serial:0", 200, 200, 200, 200, 200),
        _e("GET", "/dags", 200, 200, 200, 200, 200, foreign_ids=lambda w: {w.dag}),
        _e("GET", "/dags/{w.dag}", 200, 200, 200, 404, 404),
        _e("GET", "/dag-runs", 200, 200, 200, 200, 200, foreign_ids=lambda w: {w.dag_run}),
        _e("GET", "/dag-runs/{w.dag_run}", 200, 200, 200, 404, 404),
        _e("GET", "/dag-runs/{w.dag_run}/status?detail=true", 200, 200, 200, 404, 404),
        # writes
        _e("PATCH", "/sites/{w.site}", 200, 403, 200, 404, 404, body=lambda w: {"hostname": "changed"}),
        _e(
            "POST",
            "/apps",
            201,
            403,
            201,
            404,
            404,
            body=lambda w: {
                "site_id": w.site,
                "name": f"n{uuid.uuid4().hex[:6]}",
                "command_template": "true",
            },
        ),
        _e("PATCH", "/apps/{w.app}", 200, 403, 200, 404, 404, body=lambda w: {"description": "changed"}),
        _e("POST", "/jobs", 201, 403, 201, 422, 422, body=lambda w: [{"app_id": w.app}]),
        _e(
            "PATCH",
            "/jobs",
            200,
            403,
            200,
            404,
            404,
            body=lambda w: [{"id": w.job, "tags": {"w": "changed"}}],
        ),
        _e("PATCH", "/jobs/{w.job}", 200, 403, 200, 404, 404, body=lambda w: {"tags": {"w": "changed"}}),
        _e(
            "PATCH",
            "/transfers",
            200,
            403,
            200,
            404,
            404,
            body=lambda w: [{"id": w.transfer, "state": "error", "error": "x"}],
        ),
        _e(
            "POST",
            "/batch-jobs",
            201,
            403,
            201,
            404,
            404,
            body=lambda w: {"site_id": w.site, "num_nodes": 1, "wall_time_min": 5},
        ),
        _e(
            "PATCH",
            "/batch-jobs",
            200,
            403,
            200,
            404,
            404,
            body=lambda w: [{"id": w.batch_job, "state": "queued"}],
        ),
        _e("PATCH", "/batch-jobs/{w.batch_job}", 200, 403, 200, 404, 404, body=lambda w: {"state": "queued"}),
        _e("POST", "/sessions", 201, 403, 201, 404, 404, body=lambda w: {"site_id": w.site}),
        _e("POST", "/dags", 201, 403, 201, 404, 404, body=lambda w: _dag_body(w.site)),
        _e("POST", "/dags/{w.dag}/runs", 201, 403, 201, 404, 404, body=lambda w: {"instances": [{}]}),
        _e("POST", "/dag-runs/{w.dag_run}/kill?instance=0", 200, 403, 200, 404, 404),
        _e("POST", "/sessions/{w.session}/heartbeat", 200, 403, 200, 404, 404),
        _e(
            "POST",
            "/sessions/{w.session}/acquire",
            200,
            403,
            200,
            404,
            404,
            body=lambda w: {"max_num_jobs": 10},
        ),
        _e(
            "POST",
            "/sites",
            201,
            403,
            403,
            403,
            201,
            body=lambda w: {"name": f"n{uuid.uuid4().hex[:6]}", "path": "/tmp/n", "hostname": "h"},
        ),
        _e("POST", "/auth/tokens", 201, 403, 403, 403, 201, body=lambda w: {"name": "x", "scope": "read"}),
        _e("POST", "/auth/device/decide", 404, 403, 403, 403, 404, body=lambda w: {"user_code": "BBBB-BBBB"}),
        _e("PATCH", "/admin/users/{w.owner_id}", 403, 403, 403, 403, 403, body=lambda w: {"disabled": True}),
        _e("POST", "/runs", 201, 403, 201, 404, 404, body=lambda w: _run_body(w.site)),
        # deletions last
        _e("DELETE", "/runs/{w.run}", 204, 403, 204, 404, 404),
        _e("DELETE", "/jobs?tags=w:nothing-matches", 200, 403, 200, 200, 200),
        _e("DELETE", "/sessions/{w.session}", 204, 403, 204, 404, 404),
        _e("DELETE", "/batch-jobs/{w.batch_job}", 200, 403, 200, 404, 404),
        _e("DELETE", "/jobs/{w.job}", 204, 403, 204, 404, 404),
        _e("DELETE", "/dags/{w.dag}", 204, 403, 204, 404, 404),
        _e("DELETE", "/apps/{w.app}", 204, 403, 204, 404, 404),
        _e("DELETE", "/auth/tokens/{w.token}", 200, 403, 403, 403, 404),
        _e("DELETE", "/sites/{w.site}", 204, 403, 403, 403, 404),
    ]


@dataclass
class Outcome:
    rows: list[tuple[str, str, int, int]] = field(default_factory=list)

    @property
    def wrong(self) -> list[str]:
        return [
            f"{kind:>10}  {name}: expected {want}, got {got}"
            for kind, name, want, got in self.rows
            if want != got
        ]


def run(owner: Caller, kind: str, profile: str, caller_for: Callable[[World], Caller]) -> Outcome:
    """Build a world as ``owner``, call every endpoint as ``caller_for(world)``; check statuses,
    the owner's rows, and that lists hold none of them where they must not."""
    assert profile in PROFILES, profile
    world = build_world(owner)
    caller = caller_for(world)
    before = snapshot(owner, world)
    outcome = Outcome()
    for ep in endpoints():
        want = 401 if profile == "refused" else ep.expect[profile]
        resp = caller(ep.method, ep.url(world), ep.body(world) if ep.body else None)
        outcome.rows.append((kind, ep.name, want, resp.status_code))
        if ep.foreign_ids is not None and profile in ("other_site", "stranger") and resp.status_code == 200:
            leaked = _ids(resp.json()) & ep.foreign_ids(world)
            assert not leaked, f"{kind}: {ep.name} shows the owner's rows {leaked}"
    if profile in ("read", "other_site", "stranger", "refused"):
        assert snapshot(owner, world) == before, f"{kind} changed the owner's rows"
    return outcome
