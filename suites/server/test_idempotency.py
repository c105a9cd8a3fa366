"""Idempotent creation: jobs sent again with a known idempotency_key are answered, not created twice."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import requests
from server_helpers import Raw, SiteApp

from runner.client import Client
from runner.states import JobState

S = JobState


def _jobs(app_id: int, keys: list[str], **extra: Any) -> list[dict[str, Any]]:
    return [{"app_id": app_id, "idempotency_key": k, "parameters": {"x": k}, **extra} for k in keys]


def _event_count(client: Client, job_ids: list[int]) -> int:
    return sum(client.events.page(job_id=j, limit=1).count for j in job_ids)


def test_a_bulk_create_sent_again_creates_nothing_and_answers_the_jobs(
    raw: Raw, site_app: SiteApp, tolu_client: Client
) -> None:
    body = _jobs(site_app.app.id, ["a", "b", "c"], tags={"run": "1"})
    first = raw("POST", "/jobs", json=body)
    assert first.status_code == 201
    ids = [j["id"] for j in first.json()]
    assert [j["idempotency_key"] for j in first.json()] == ["a", "b", "c"]
    # a created job is answered as GET shows it: the Job's fields, none of the row's others
    assert first.json()[0] == raw("GET", f"/jobs/{ids[0]}").json()
    events = _event_count(tolu_client, ids)

    again = raw("POST", "/jobs", json=body)
    assert again.status_code == 201 and [j["id"] for j in again.json()] == ids
    assert tolu_client.jobs.count(app_id=site_app.app.id) == 3
    assert _event_count(tolu_client, ids) == events  # no Event written twice either

    # the answer is the job as it is now, not as it was created
    tolu_client.jobs.update(ids[0], tags={"run": "2"})
    assert raw("POST", "/jobs", json=body).json()[0]["tags"] == {"run": "2"}


def test_known_and_new_jobs_in_one_request_only_the_new_are_created(
    raw: Raw, site_app: SiteApp, tolu_client: Client
) -> None:
    app = site_app.app.id
    prep = {"app_id": app, "key": "prep", "idempotency_key": "prep-1", "parameters": {"x": "p"}}
    first = raw("POST", "/jobs", json=[prep]).json()
    # a DAG sent later: its parent (by in-request key) exists already and becomes the new jobs' parent
    sims = [
        {"app_id": app, "key": f"s{i}", "idempotency_key": f"sim-{i}", "parents": ["prep"], "parameters": {}}
        for i in range(2)
    ]
    made = raw("POST", "/jobs", json=[prep, *sims])
    assert made.status_code == 201, made.text
    out = made.json()
    assert out[0]["id"] == first[0]["id"]
    assert [j["parents"] for j in out[1:]] == [[first[0]["id"]], [first[0]["id"]]]
    assert {j["state"] for j in out[1:]} == {S.AWAITING_PARENTS.value}
    assert tolu_client.jobs.count(app_id=app) == 3

    # an error in a new element names its place in the request, not among the new ones
    bad = raw("POST", "/jobs", json=[prep, {"app_id": 999_999, "idempotency_key": "x"}])
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["body", 1, "app_id"]


def test_a_key_reused_for_different_work_is_refused(raw: Raw, site_app: SiteApp, tolu_client: Client) -> None:
    app = site_app.app.id
    (job,) = raw("POST", "/jobs", json=_jobs(app, ["k"])).json()
    changed = [
        {"app_id": app, "idempotency_key": "new"},
        {**_jobs(app, ["k"])[0], "parameters": {"x": "other"}},
    ]
    resp = raw("POST", "/jobs", json=changed)
    assert resp.status_code == 422
    (err,) = resp.json()["detail"]
    assert err["loc"] == ["body", 1, "idempotency_key"] and f"job {job['id']}" in err["msg"]
    assert tolu_client.jobs.count(app_id=app) == 1  # "new" was not written either

    twice = raw("POST", "/jobs", json=_jobs(app, ["d", "d"]))
    assert twice.status_code == 422 and twice.json()["detail"][0]["loc"] == ["body", 1, "idempotency_key"]
    empty = raw("POST", "/jobs", json=_jobs(app, [""]))
    assert empty.status_code == 422 and empty.json()["detail"][0]["loc"][-1] == "idempotency_key"


def test_keys_are_per_owner(raw: Raw, site_app: SiteApp, make_user: Callable[[], Client]) -> None:
    (mine,) = raw("POST", "/jobs", json=_jobs(site_app.app.id, ["shared"])).json()
    other = make_user()
    other_site = other.sites.create(name="o", path="/o", hostname="h")
    other_app = other.apps.create(
        site_id=other_site.id, name="echo", command_template="echo {x}", parameters={"x": "0"}
    )
    (theirs,) = other.jobs.bulk_create(_jobs(other_app.id, ["shared"]))
    assert theirs.id != mine["id"] and theirs.idempotency_key == "shared"


def test_concurrent_requests_with_the_same_keys_create_each_job_once(
    tolu_client: Client, site_app: SiteApp
) -> None:
    body = _jobs(site_app.app.id, [f"c{i}" for i in range(200)])
    token = tolu_client._http.token
    answers: list[requests.Response] = []
    barrier = threading.Barrier(4)

    def send() -> None:
        barrier.wait()
        headers = {"Authorization": f"Bearer {token}"}
        answers.append(requests.post(tolu_client.url + "/jobs", json=body, headers=headers, timeout=120))

    threads = [threading.Thread(target=send) for _ in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert [a.status_code for a in answers] == [201] * 4, [a.text[:200] for a in answers]
    ids = {tuple(j["id"] for j in a.json()) for a in answers}
    assert len(ids) == 1
    assert tolu_client.jobs.count(app_id=site_app.app.id) == 200


def test_the_client_gives_every_job_a_key_and_honours_its_own(tolu_client: Client, site_app: SiteApp) -> None:
    app = site_app.app.id
    made = tolu_client.jobs.bulk_create([{"app_id": app}, {"app_id": app}])
    keys = [j.idempotency_key for j in made]
    assert all(keys) and len(set(keys)) == 2
    one = tolu_client.jobs.create(app, idempotency_key="nightly-2026-11-27")
    assert tolu_client.jobs.create(app, idempotency_key="nightly-2026-11-27").id == one.id

    def dag() -> list[int]:
        batch = tolu_client.jobs.batch()
        root = batch.add(app, idempotency_key="root")
        batch.add(app, parents=[root], idempotency_key="leaf")
        return [j.id for j in batch.submit()]

    assert dag() == dag()
    assert tolu_client.jobs.count(app_id=app) == 5
