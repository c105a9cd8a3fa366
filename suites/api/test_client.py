"""The Python client against a real server over HTTP: every resource, bulk, filters, errors."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
import requests

from harness.fixtures_server import ServerHandle
from runner.client import AuthError, Client, Conflict, InvalidRequest, JobsFailed, NotFound, WaitTimeout
from runner.models import MAX_BULK, App, JobCreate, JobFilter, JobFilterKwargs, JobUpdate, Site
from runner.states import JobState

S = JobState


@pytest.fixture
def site(tolu_client: Client, tmp_path: object) -> Site:
    return tolu_client.sites.create(name="site-a", path=str(tmp_path), hostname="login1")


@pytest.fixture
def app(tolu_client: Client, site: Site) -> App:
    return tolu_client.apps.create(
        site_id=site.id,
        name="hello",
        command_template="echo {greeting} {name}",
        parameters={"greeting": "hello", "name": "world"},
        default_resources={"num_nodes": 1},
    )


def test_health_and_me(tolu_client: Client) -> None:
    health = tolu_client.health()
    assert health.status == "ok" and health.database in ("sqlite", "postgresql")
    assert tolu_client.me().username == tolu_client.username


def test_sites_crud(tolu_client: Client, site: Site) -> None:
    c = tolu_client
    assert c.sites.get(site.id) == site
    assert [s.id for s in c.sites.filter()] == [site.id]
    assert [s.id for s in c.sites.filter(name="site-a")] == [site.id]
    assert c.sites.filter(name="nope") == []
    with pytest.raises(Conflict):
        c.sites.create(name="site-a", path="/x", hostname="h")
    changed = c.sites.update(site.id, hostname="login2", settings_summary={"scheduler": "slurm"})
    assert changed.hostname == "login2" and changed.settings_summary == {"scheduler": "slurm"}
    beat = c.sites.heartbeat(site.id)
    assert beat.last_heartbeat is not None
    assert c.sites.page(limit=1).count == 1
    c.sites.delete(site.id)
    with pytest.raises(NotFound):
        c.sites.get(site.id)


def test_apps_crud_and_sync(tolu_client: Client, site: Site, app: App) -> None:
    c = tolu_client
    assert c.apps.get(app.id).parameters == {"greeting": "hello", "name": "world"}
    assert [a.name for a in c.apps.filter(site_id=site.id)] == ["hello"]
    with pytest.raises(Conflict):
        c.apps.create(site_id=site.id, name="hello", command_template="true")
    assert c.apps.update(app.id, description="says hello").description == "says hello"

    from runner.models import AppCreate

    wanted = [
        AppCreate(
            site_id=site.id,
            name="hello",
            description="says hello",
            command_template="echo {greeting} {name}",
            parameters={"greeting": "hello", "name": "world"},
        ),
        AppCreate(site_id=site.id, name="bye", command_template="echo bye"),
    ]
    first = c.apps.sync(site.id, wanted)
    assert [a.name for a in first.created] == ["bye"] and [a.name for a in first.unchanged] == ["hello"]
    wanted[1] = wanted[1].model_copy(update={"command_template": "echo bye now"})
    second = c.apps.sync(site.id, wanted)
    assert [a.name for a in second.updated] == ["bye"] and second.updated[
        0
    ].command_template == "echo bye now"
    third = c.apps.sync(site.id, wanted[:1], prune=True)
    assert [a.name for a in third.deleted] == ["bye"]
    assert [a.name for a in c.apps.filter(site_id=site.id)] == ["hello"]
    c.apps.delete(app.id)
    with pytest.raises(NotFound):
        c.apps.get(app.id)


def test_jobs_create_get_update_delete(tolu_client: Client, app: App) -> None:
    c = tolu_client
    job = c.jobs.create(
        app.id,
        parameters={"name": "x"},
        tags={"run": "a"},
        retry_limit=1,
        resources={"num_nodes": 2, "ranks_per_node": 3},
    )
    # No parents, no stage-in, no preprocess hook: the server takes it to PREPROCESSED.
    assert job.state == S.PREPROCESSED and job.num_nodes == 2 and job.ranks_per_node == 3
    assert c.jobs.get(job.id) == job
    states = [(e.from_state, e.to_state) for e in c.events.filter(job_id=job.id, ordering="id")]
    assert states[-1][1] == S.PREPROCESSED and states[0][1] in (S.CREATED, S.STAGED_IN)
    changed = c.jobs.update(job.id, tags={"run": "b"}, retry_limit=4)
    assert changed.tags == {"run": "b"} and changed.retry_limit == 4
    killed = c.jobs.update(job.id, state=S.KILLED, state_data={"reason": "test"})
    assert killed.state == S.KILLED
    c.jobs.delete(job.id)
    with pytest.raises(NotFound):
        c.jobs.get(job.id)


def test_bulk_create_dag_by_keys_and_parents(tolu_client: Client, app: App) -> None:
    c = tolu_client
    made = c.jobs.bulk_create(
        [
            JobCreate(app_id=app.id, key="a", parameters={"name": "a"}),
            JobCreate(app_id=app.id, key="b", parents=["a"], parameters={"name": "b"}),
            {"app_id": app.id, "key": "c", "parents": ["a", "b"], "parameters": {"name": "c"}},
        ]
    )
    a, b, cc = made
    assert a.state == S.PREPROCESSED
    assert b.state == S.AWAITING_PARENTS and b.parents == [a.id]
    assert cc.state == S.AWAITING_PARENTS and sorted(cc.parents) == [a.id, b.id]
    assert [j.id for j in c.jobs.filter(parent_id=a.id)] == [b.id, cc.id]
    # A failed parent fails its waiting children.
    c.jobs.update(a.id, state=S.FAILED)
    assert {j.state for j in c.jobs.filter(id=[b.id, cc.id])} == {S.FAILED}


def test_bulk_create_is_all_or_nothing(tolu_client: Client, app: App) -> None:
    c = tolu_client
    before = c.jobs.count()
    bad = [{"app_id": app.id, "tags": {"i": str(i)}} for i in range(5)]
    bad[3]["resources"] = {"num_nodes": 0}
    with pytest.raises(InvalidRequest) as err:
        c.jobs.bulk_create(bad)
    assert err.value.paths == ["body.3.resources.num_nodes"], err.value.errors
    assert err.value.status == 422 and "num_nodes" in str(err.value)

    with pytest.raises(InvalidRequest):
        c.jobs.bulk_create([{"app_id": app.id}, {"app_id": app.id, "parents": [10**9]}])
    with pytest.raises(InvalidRequest):
        c.jobs.bulk_create(
            [
                {"app_id": app.id, "key": "x", "parents": ["y"]},
                {"app_id": app.id, "key": "y", "parents": ["x"]},
            ]
        )
    strict = c.apps.create(
        site_id=app.site_id, name="strict", command_template="echo {needed}", parameters={"needed": None}
    )
    with pytest.raises(InvalidRequest) as err:
        c.jobs.bulk_create([{"app_id": strict.id, "parameters": {"needed": 1}}, {"app_id": strict.id}])
    assert err.value.paths == ["body.1.parameters"] and "needed" in str(err.value)
    with pytest.raises(InvalidRequest) as err:
        c.jobs.bulk_create([{"app_id": app.id, "tagz": {}}])
    assert any(e.path.endswith("0.tagz") for e in err.value.errors), err.value.errors
    assert c.jobs.count() == before


def test_bulk_update_is_all_or_nothing(tolu_client: Client, app: App) -> None:
    c = tolu_client
    jobs = c.jobs.bulk_create([{"app_id": app.id} for _ in range(4)])
    updates = [JobUpdate(id=j.id, state=S.KILLED) for j in jobs[:3]]
    updates.append(JobUpdate(id=jobs[3].id, state=S.JOB_FINISHED))  # PREPROCESSED -> JOB_FINISHED: no
    with pytest.raises(Conflict) as err:
        c.jobs.bulk_update(updates)
    assert err.value.status == 409
    assert str(jobs[3].id) in str(err.value) and "JOB_FINISHED" in str(err.value)
    assert {j.state for j in c.jobs.filter(id=[j.id for j in jobs])} == {S.PREPROCESSED}
    done = c.jobs.bulk_update([{"id": j.id, "state": "KILLED"} for j in jobs[:2]])
    assert [j.id for j in done] == [j.id for j in jobs[:2]] and {j.state for j in done} == {S.KILLED}
    assert c.jobs.bulk_update([JobUpdate(id=j.id, state=S.KILLED) for j in jobs[2:]], returning=False) is None
    assert {j.state for j in c.jobs.filter(id=[j.id for j in jobs])} == {S.KILLED}
    with pytest.raises(Conflict):  # errors are raised the same without the answer
        c.jobs.bulk_update([{"id": jobs[0].id, "state": "RUNNING"}], returning=False)


def test_filters_pagination_and_counts(tolu_server: ServerHandle, tolu_client: Client, app: App) -> None:
    c = tolu_client
    c.jobs.bulk_create([{"app_id": app.id, "tags": {"run": "a", "i": str(i % 3)}} for i in range(25)])
    c.jobs.bulk_create([{"app_id": app.id, "tags": {"run": "b"}} for _ in range(5)])
    assert c.jobs.count(tags={"run": "a"}) == 25
    assert c.jobs.count(tags={"run": "a", "i": "0"}) == 9
    page = c.jobs.page(tags={"run": "a"}, ordering="id", limit=10, offset=20)
    assert page.count == 25 and len(page.results) == 5
    assert len(c.jobs.filter(tags={"run": "a"}, limit=7)) == 7
    # filter() follows pages: with 4 rows a page it needs 7 requests for 25 jobs, none lost or repeated.
    small = Client(c.url, c.token, page_size=4)
    ids = [j.id for j in small.jobs.filter(tags={"run": "a"})]
    assert len(ids) == 25 and ids == sorted(set(ids))
    newest_first = c.jobs.filter(tags={"run": "a"}, ordering="-id")
    assert [j.id for j in newest_first] == sorted(ids, reverse=True)
    assert c.jobs.counts() == {S.PREPROCESSED: 30}
    some = ids[:3]
    c.jobs.bulk_update([{"id": i, "state": "KILLED"} for i in some])
    assert c.jobs.counts(tags={"run": "a"}) == {S.PREPROCESSED: 22, S.KILLED: 3}
    assert sorted(j.id for j in c.jobs.filter(state=[S.KILLED, "FAILED"])) == some
    assert c.jobs.count(app_id=app.id, site_id=app.site_id) == 30
    later = datetime.now(UTC) + timedelta(hours=1)
    assert c.jobs.count(created_after=later) == 0 and c.jobs.count(created_before=later) == 30
    assert c.jobs.delete_where(tags={"run": "b"}) == 5
    assert c.jobs.count() == 25
    with pytest.raises(ValueError, match="at least one filter"):
        c.jobs.delete_where()
    small.close()


def test_the_job_filters_are_one_list_for_client_route_and_service(
    tolu_server: ServerHandle, tolu_client: Client, app: App
) -> None:
    names = list(JobFilter.model_fields)
    assert list(JobFilterKwargs.__annotations__) == names
    # help() spells the filters out on every method that takes them
    jobs = tolu_client.jobs
    for method in (jobs.filter, jobs.page, jobs.count, jobs.counts, jobs.delete_where):
        keywords = [p.name for p in inspect.signature(method).parameters.values() if p.kind is p.KEYWORD_ONLY]
        assert keywords[: len(names)] == names, method.__name__
    # and the API takes them as its query parameters
    doc = requests.get(tolu_server.url + "/openapi.json", timeout=30).json()
    for method, path in (("get", "/jobs"), ("get", "/jobs/counts"), ("delete", "/jobs")):
        query = [p["name"] for p in doc["paths"][path][method]["parameters"] if p["in"] == "query"]
        assert [q for q in query if q not in ("ordering", "limit", "offset")] == names, path

    with pytest.raises(TypeError, match=r"'stat'.*the job filters are id, state, tags"):
        jobs.count(stat="RUNNING")  # type: ignore[call-arg]
    made = jobs.bulk_create([{"app_id": app.id} for _ in range(3)])
    assert jobs.count(id=made[0].id) == 1 and jobs.count(id=(j.id for j in made)) == 3
    assert jobs.count(state="PREPROCESSED", tags={}) == 3
    # values go as given; the server names the bad one
    with pytest.raises(InvalidRequest) as bad:
        jobs.count(state="NOPE")
    assert bad.value.paths == ["query.state.0"]
    with pytest.raises(InvalidRequest) as bad:
        jobs.counts(tags={"": "x"})
    assert bad.value.paths == ["query.tags.0"] and "expected key:value" in str(bad.value)


def test_bulk_requests_are_split(tolu_client: Client, app: App) -> None:
    c = tolu_client
    n = 11
    jobs: list[JobCreate | dict[str, object]] = [{"app_id": app.id, "tags": {"big": "1"}} for _ in range(n)]
    # The last job names the first one's key: the parent goes in the first request, the child in the last.
    jobs[0] = {"app_id": app.id, "key": "root", "tags": {"big": "1"}}
    jobs[-1] = JobCreate(app_id=app.id, key="leaf", parents=["root", "mid"], tags={"big": "1"})
    jobs[-2] = {"app_id": app.id, "key": "mid", "tags": {"big": "1"}}
    made = c.jobs.bulk_create(jobs, chunk_size=4)
    assert len(made) == n and [j.id for j in made] == sorted({j.id for j in made})
    assert made[-1].parents == [made[0].id, made[-2].id] and made[-1].state == S.AWAITING_PARENTS
    assert c.jobs.count(tags={"big": "1"}) == n
    with pytest.raises(ValueError, match="parents must come before"):
        c.jobs.bulk_create(
            [{"app_id": app.id, "parents": ["later"]}, {"app_id": app.id, "key": "later"}], chunk_size=1
        )
    assert c.jobs.count(tags={"big": "1"}) == n
    updated = c.jobs.bulk_update([{"id": j.id, "tags": {"big": "2"}} for j in made], chunk_size=3)
    assert [j.id for j in updated] == [j.id for j in made] and c.jobs.count(tags={"big": "2"}) == n
    with pytest.raises(ValueError, match="chunk_size"):
        c.jobs.bulk_create([], chunk_size=MAX_BULK + 1)


def test_sessions_acquire_run_and_finish(tolu_client: Client, site: Site, app: App) -> None:
    c = tolu_client
    jobs = c.jobs.bulk_create([{"app_id": app.id, "tags": {"q": "x"}} for _ in range(6)])
    session = c.sessions.create(site.id, ttl_sec=60)
    assert c.sessions.heartbeat(session.id).expires_at >= session.expires_at
    held = c.sessions.acquire(session.id, max_num_jobs=4, filter_tags={"q": "x"})
    assert len(held) == 4 and {j.session_id for j in held} == {session.id}
    other = c.sessions.create(site.id)
    rest = c.sessions.acquire(other.id, max_num_jobs=10)
    assert {j.id for j in rest} == {j.id for j in jobs} - {j.id for j in held}
    c.jobs.bulk_update([JobUpdate(id=j.id, state=S.RUNNING) for j in held])
    done = c.jobs.bulk_update([JobUpdate(id=j.id, state=S.RUN_DONE, return_code=0) for j in held])
    assert {j.return_code for j in done} == {0}
    finished = c.jobs.wait(held, timeout=30, poll_sec=0.2)
    assert {j.state for j in finished} == {S.JOB_FINISHED}
    assert [s.id for s in c.sessions.filter(site_id=site.id)] == [session.id, other.id]
    c.sessions.delete(session.id)
    c.sessions.delete(other.id)
    assert {j.session_id for j in c.jobs.filter(id=[j.id for j in rest])} == {None}


def test_batch_jobs(tolu_client: Client, site: Site) -> None:
    c = tolu_client
    bj = c.batch_jobs.create(
        site_id=site.id, num_nodes=2, wall_time_min=10, job_mode="serial", filter_tags={"run": "a"}
    )
    assert bj.state == "pending_submission" and bj.filter_tags == {"run": "a"}
    assert c.batch_jobs.get(bj.id) == bj
    queued = c.batch_jobs.update(bj.id, state="queued", scheduler_id="123")
    assert queued.state == "queued" and queued.scheduler_id == "123"
    (running,) = c.batch_jobs.bulk_update([{"id": bj.id, "state": "running"}])
    assert running.state == "running"
    assert [b.id for b in c.batch_jobs.filter(site_id=site.id, state="running")] == [bj.id]
    assert c.batch_jobs.delete(bj.id).state == "pending_deletion"
    with pytest.raises(InvalidRequest):
        c.batch_jobs.create(site_id=site.id, num_nodes=0, wall_time_min=10)


def test_transfers(tolu_client: Client, app: App) -> None:
    c = tolu_client
    job = c.jobs.create(
        app.id, transfers=[{"direction": "in", "source": "local:/data/in.txt", "destination": "in.txt"}]
    )
    assert job.state == S.READY
    (item,) = c.transfers.filter(job_id=job.id)
    assert item.state == "pending" and item.source == "local:/data/in.txt"
    c.transfers.bulk_update([{"id": item.id, "state": "done"}])
    assert c.jobs.get(job.id).state == S.PREPROCESSED


def test_another_users_rows_are_not_found(
    tolu_client: Client, site: Site, app: App, make_user: Callable[[], Client]
) -> None:
    job = tolu_client.jobs.create(app.id)
    mallory = make_user()
    for call in (
        lambda: mallory.jobs.get(job.id),
        lambda: mallory.jobs.update(job.id, state=S.KILLED),
        lambda: mallory.jobs.delete(job.id),
        lambda: mallory.sites.get(site.id),
        lambda: mallory.apps.get(app.id),
        lambda: mallory.apps.delete(app.id),
    ):
        with pytest.raises(NotFound) as err:
            call()
        assert err.value.status == 404 and str(err.value)
    assert mallory.jobs.filter() == [] and mallory.jobs.count(site_id=site.id) == 0
    with pytest.raises((NotFound, InvalidRequest)):
        mallory.jobs.bulk_create([{"app_id": app.id}])
    assert tolu_client.jobs.get(job.id).state == S.PREPROCESSED


def test_auth_errors(tolu_server: ServerHandle, tolu_client: Client) -> None:
    url = tolu_client.url
    with pytest.raises(AuthError) as err:
        Client.login(url, tolu_client.username or "", "wrong-password")
    assert err.value.status == 401
    with pytest.raises(AuthError) as err:
        Client(url, "not-a-token").jobs.filter()
    assert "tolu login" in str(err.value)
    with pytest.raises(Conflict):
        Client.register(url, tolu_client.username or "", "another-password")
    with pytest.raises(InvalidRequest) as err2:
        Client.register(url, "bob", "short")
    assert "password" in err2.value.paths[0]


def test_wait_reports_failures_timeouts_and_unknown_ids(tolu_client: Client, site: Site, app: App) -> None:
    c = tolu_client
    a, b = c.jobs.bulk_create([{"app_id": app.id}, {"app_id": app.id}])
    c.jobs.update(a.id, state=S.KILLED)
    with pytest.raises(WaitTimeout) as timeout:
        c.jobs.wait([a, b], timeout=0.3, poll_sec=0.1)
    assert timeout.value.pending == {b.id: "PREPROCESSED"} and f"{b.id}=PREPROCESSED" in str(timeout.value)
    c.jobs.update(b.id, state=S.KILLED, state_data={"reason": "not needed"})
    ended = c.jobs.wait([a.id, b.id], timeout=10, raise_on_failure=False)
    assert [j.state for j in ended] == [S.KILLED, S.KILLED]
    with pytest.raises(JobsFailed) as failed:  # waits raise on failure by default
        c.jobs.wait([a, b], timeout=10)
    assert [j.id for j in failed.value.failed] == [a.id, b.id]
    assert failed.value.outputs[a.id] == f"{site.path}/data/{a.workdir}/job.out"
    assert "2 of 2 jobs did not finish" in str(failed.value)
    assert failed.value.outputs[b.id] in str(failed.value)
    assert [(f.job_id, f.reason) for f in failed.value.failures] == [(a.id, "killed"), (b.id, "not needed")]
    with pytest.raises(NotFound, match="jobs not found: 999999999"):
        c.jobs.wait([a.id, 999_999_999], timeout=10)


def test_job_batch_builds_a_dag_in_one_request(tolu_client: Client, app: App) -> None:
    c = tolu_client
    outside = c.jobs.create(app.id)
    batch = c.jobs.batch()
    prep = batch.add(app, parameters={"name": "prep"}, tags={"dag": "1"})
    sims = [batch.add(app.id, parents=[prep, outside], parameters={"name": f"s{i}"}) for i in range(3)]
    final = batch.add(app, parents=sims, tags={"dag": "1"})
    jobs = batch.submit()
    assert len(jobs) == len(batch) == 5
    assert batch[prep].state == S.PREPROCESSED and batch[prep].parents == []
    assert sorted(batch[sims[0]].parents) == sorted([batch[prep].id, outside.id])
    assert sorted(batch[final].parents) == sorted(batch[s].id for s in sims)
    assert batch[final].state == S.AWAITING_PARENTS
    with pytest.raises(ValueError, match="already submitted"):
        batch.add(app)
    with pytest.raises(TypeError, match="JobRef"):
        c.jobs.batch().add(app, parents=["not-a-ref"])  # type: ignore[list-item]
