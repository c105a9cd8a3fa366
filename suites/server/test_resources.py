"""CRUD, filters, ordering, pagination and counts of the REST resources."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from server_helpers import Raw, SiteApp, make_site_app

from runner.client import Client
from runner.client.errors import Conflict, NotFound
from runner.states import JobState

S = JobState


def test_health_and_openapi(raw: Raw) -> None:
    health = raw("GET", "/health").json()
    assert (
        health["status"] == "ok"
        and health["schema_revision"]
        and health["database"] in ("sqlite", "postgresql")
    )
    doc = raw("GET", "/openapi.json").json()
    assert "/sessions/{session_id}/acquire" in doc["paths"]
    assert doc["paths"]["/jobs"]["post"]["requestBody"]["content"]["application/json"]["schema"]["items"] == {
        "$ref": "#/components/schemas/JobCreate"
    }
    assert "JobCreate" in doc["components"]["schemas"]


def test_sites_and_apps(tolu_client: Client) -> None:
    site = tolu_client.sites.create(name="alpha", path="/p", hostname="h", settings_summary={"a": 1})
    with pytest.raises(Conflict):
        tolu_client.sites.create(name="alpha", path="/q", hostname="h")
    assert tolu_client.sites.update(site.id, hostname="h2").hostname == "h2"
    assert [s.name for s in tolu_client.sites.filter(name="alpha")] == ["alpha"]
    app = tolu_client.apps.create(
        site_id=site.id, name="hello", command_template="echo {name}", parameters={"name": None}
    )
    with pytest.raises(Conflict):
        tolu_client.apps.create(site_id=site.id, name="hello", command_template="true")
    assert tolu_client.apps.update(app.id, description="says hi").description == "says hi"
    assert [a.id for a in tolu_client.apps.filter(site_id=site.id)] == [app.id]
    tolu_client.apps.delete(app.id)
    with pytest.raises(NotFound):
        tolu_client.apps.get(app.id)


def test_required_parameters_are_checked(tolu_client: Client, raw: Raw) -> None:
    site = tolu_client.sites.create(name="p", path="/p", hostname="h")
    app = tolu_client.apps.create(
        site_id=site.id, name="hello", command_template="echo {name}", parameters={"name": None}
    )
    resp = raw("POST", "/jobs", json=[{"app_id": app.id}])
    assert resp.status_code == 422 and resp.json()["detail"][0]["loc"] == ["body", 0, "parameters"]
    (job,) = tolu_client.jobs.bulk_create([{"app_id": app.id, "parameters": {"name": "x"}}])
    assert job.workdir == f"hello/{job.id}"


def test_job_filters_ordering_pages_and_counts(tolu_client: Client, site_app: SiteApp) -> None:
    a = site_app.app.id
    start = datetime.now(UTC) - timedelta(seconds=5)
    made = tolu_client.jobs.bulk_create(
        [{"app_id": a, "tags": {"run": "x", "n": str(i % 3)}} for i in range(30)]
        + [{"app_id": a, "tags": {"run": "y"}} for _ in range(5)]
    )
    ids = [j.id for j in made]
    tolu_client.jobs.bulk_update([{"id": i, "state": "KILLED"} for i in ids[:4]])
    page = tolu_client.jobs.page(tags={"run": "x"}, limit=7, offset=7)
    assert page.count == 30 and [j.id for j in page.results] == ids[7:14]
    page = tolu_client.jobs.page(tags={"run": "x", "n": "1"}, state=["PREPROCESSED"], ordering="-id", limit=3)
    expected = [j.id for j in made[:30] if j.tags["n"] == "1" and j.id not in ids[:4]]
    assert page.count == len(expected) and [j.id for j in page.results] == sorted(expected, reverse=True)[:3]
    assert tolu_client.jobs.count(site_id=site_app.site.id, created_after=start) == 35
    assert tolu_client.jobs.count(created_before=start) == 0
    assert tolu_client.jobs.count(id=ids[:2]) == 2
    assert tolu_client.jobs.counts(tags={"run": "x"}) == {S.KILLED: 4, S.PREPROCESSED: 26}
    assert tolu_client.jobs.delete_where(tags={"run": "y"}) == 5
    assert tolu_client.jobs.count() == 30
    assert tolu_client.events.page(job_id=ids[-1]).count == 0  # events went with their jobs
    tolu_client.jobs.delete(ids[0])
    with pytest.raises(NotFound):
        tolu_client.jobs.get(ids[0])


def test_tags_and_fields_can_be_updated(tolu_client: Client, site_app: SiteApp) -> None:
    (job,) = tolu_client.jobs.bulk_create([{"app_id": site_app.app.id, "tags": {"a": "1"}}])
    (job,) = tolu_client.jobs.bulk_update(
        [
            {
                "id": job.id,
                "tags": {"b": "2"},
                "data": {"k": [1, 2]},
                "resources": {"num_nodes": 3},
                "retry_limit": 7,
            }
        ]
    )
    assert (
        job.tags == {"b": "2"} and job.data == {"k": [1, 2]} and job.num_nodes == 3 and job.retry_limit == 7
    )
    assert tolu_client.jobs.count(tags={"a": "1"}) == 0 and tolu_client.jobs.count(tags={"b": "2"}) == 1


def test_bulk_update_without_returning_answers_204_and_applies(
    tolu_client: Client, site_app: SiteApp, raw: Raw
) -> None:
    jobs = tolu_client.jobs.bulk_create([{"app_id": site_app.app.id} for _ in range(3)])
    body = [{"id": j.id, "state": "KILLED"} for j in jobs]
    resp = raw("PATCH", "/jobs", params={"returning": "false"}, json=body)
    assert resp.status_code == 204 and resp.content == b""
    assert {j.state for j in tolu_client.jobs.filter(id=[j.id for j in jobs])} == {"KILLED"}
    back_to_running = [{"id": jobs[0].id, "state": "RUNNING"}]
    refused = raw("PATCH", "/jobs", params={"returning": "false"}, json=back_to_running)
    assert refused.status_code == 409


def test_deleting_a_site_deletes_what_hangs_off_it(tolu_client: Client) -> None:
    sa = make_site_app(tolu_client)
    other = make_site_app(tolu_client)
    tolu_client.jobs.bulk_create(
        [{"app_id": sa.app.id, "key": "p", "tags": {"t": "1"}}, {"app_id": sa.app.id, "parents": ["p"]}]
    )
    (kept,) = tolu_client.jobs.bulk_create([{"app_id": other.app.id}])
    tolu_client.batch_jobs.create(site_id=sa.site.id, num_nodes=1, wall_time_min=5)
    tolu_client.sessions.create(sa.site.id)
    tolu_client.sites.delete(sa.site.id)
    assert [j.id for j in tolu_client.jobs.filter()] == [kept.id]
    assert {e.job_id for e in tolu_client.events.filter()} == {kept.id}
    assert tolu_client.batch_jobs.filter() == [] and tolu_client.sessions.filter() == []
    assert [a.id for a in tolu_client.apps.filter()] == [other.app.id]


def test_batch_jobs(tolu_client: Client, site_app: SiteApp) -> None:
    bj = tolu_client.batch_jobs.create(
        site_id=site_app.site.id, num_nodes=2, wall_time_min=30, filter_tags={"run": "x"}
    )
    assert bj.state == "pending_submission"
    bj = tolu_client.batch_jobs.update(bj.id, state="queued", scheduler_id="1234")
    assert bj.state == "queued" and bj.scheduler_id == "1234"
    with pytest.raises(Conflict) as err:
        tolu_client.batch_jobs.update(bj.id, state="pending_submission")
    assert f"batch job {bj.id}: cannot go from queued to pending_submission" in str(err.value)
    (bj,) = tolu_client.batch_jobs.bulk_update(
        [{"id": bj.id, "state": "running", "start_time": datetime.now(UTC)}]
    )
    assert bj.state == "running" and bj.start_time is not None
    assert tolu_client.batch_jobs.delete(bj.id).state == "pending_deletion"
    assert [b.id for b in tolu_client.batch_jobs.filter(state=["pending_deletion"])] == [bj.id]
    # a session of the batch job stamps the jobs it acquires
    (job,) = tolu_client.jobs.bulk_create([{"app_id": site_app.app.id}])
    session = tolu_client.sessions.create(site_app.site.id, batch_job_id=bj.id)
    (held,) = tolu_client.sessions.acquire(session.id, max_num_jobs=5)
    assert held.id == job.id and held.batch_job_id == bj.id
    assert [j.id for j in tolu_client.jobs.filter(batch_job_id=bj.id)] == [job.id]
