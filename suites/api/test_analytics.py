"""client.analytics and the notebook views against a real server: utilization of a batch
job, available nodes, throughput, HTML without blobs, to_pandas, job handles of a
command app. The launcher's part is played through the API, with exact timestamps."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from runner.client import Client, JobFailed, Table
from runner.models import App, Site
from runner.states import JobState

S = JobState


@pytest.fixture
def site(tolu_client: Client) -> Site:
    return tolu_client.sites.create(name="analytics", path="/tmp/analytics", hostname="h")


@pytest.fixture
def app(tolu_client: Client, site: Site) -> App:
    return tolu_client.apps.create(site_id=site.id, name="work", command_template="true")


def test_utilization_available_nodes_and_throughput(tolu_client: Client, site: Site, app: App) -> None:
    c = tolu_client
    bj = c.batch_jobs.create(site_id=site.id, num_nodes=4, wall_time_min=10)
    c.batch_jobs.update(bj.id, state="running")
    jobs = c.jobs.bulk_create(
        [
            {"app_id": app.id},
            {"app_id": app.id},
            {"app_id": app.id, "resources": {"num_nodes": 1, "node_packing_count": 2}},
        ]
    )
    session = c.sessions.create(site.id, batch_job_id=bj.id)
    assert len(c.sessions.acquire(session.id, max_num_jobs=10)) == 3
    t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=30)
    c.jobs.bulk_update(
        [
            {"id": j.id, "state": "RUNNING", "state_timestamp": t0 + timedelta(seconds=i)}
            for i, j in enumerate(jobs)
        ]
    )
    now = c.analytics.available_nodes(site_id=site.id)
    assert [(r["batch_job"], r["nodes"], r["busy_nodes"], r["available"]) for r in now] == [
        (bj.id, 4, 2.5, 1.5)
    ]
    c.jobs.bulk_update(
        [
            {
                "id": jobs[0].id,
                "state": "RUN_DONE",
                "return_code": 0,
                "state_timestamp": t0 + timedelta(seconds=3),
            }
        ]
    )
    util = c.analytics.utilization(bj.id)
    assert util.columns == ("time", "running", "busy_nodes", "nodes", "utilization")
    assert [(r["running"], r["busy_nodes"], r["utilization"]) for r in util] == [
        (1, 1.0, 0.25),
        (2, 2.0, 0.5),
        (3, 2.5, 0.625),
        (2, 1.5, 0.375),
    ]
    assert [r["time"] for r in util] == [t0 + timedelta(seconds=i) for i in range(4)]
    through = c.analytics.throughput(site_id=site.id, interval_sec=10)
    assert [(r["finished"], r["total"]) for r in through] == [(1, 1)]
    frame = util.to_pandas()
    assert list(frame.columns) == list(util.columns) and frame["busy_nodes"].max() == 2.5
    assert "<table" in util._repr_html_() and "utilization of batch job" in util._repr_html_()


def test_reprs_show_no_blobs_and_failures_in_red(tolu_client: Client, site: Site, app: App) -> None:
    c = tolu_client
    blob = "gAS" + "x" * 500
    fn_app = c.apps.create(site_id=site.id, name="fn", kind="python", serialized_function=blob)
    assert blob not in repr(fn_app) and blob not in fn_app._repr_html_()
    ok_job, bad_job = c.jobs.bulk_create([{"app_id": app.id}, {"app_id": app.id}])
    c.jobs.update(ok_job.id, data={"result": blob})
    c.jobs.update(bad_job.id, state=S.FAILED, state_data={"reason": "input missing"})
    listed = c.jobs.filter(site_id=site.id)
    assert blob not in repr(listed) and "<503 characters>" in repr(listed[0])
    html = listed._repr_html_()
    assert blob not in html and "input missing" in html and html.count("background:#fde8e8") == 1
    frame = listed.to_pandas()
    assert list(frame["state"]) == ["PREPROCESSED", "FAILED"] and "serialized_args" not in frame.columns
    assert listed.by_state() == {S.PREPROCESSED: 1, S.FAILED: 1}
    table = Table(("n", "name"), [(1, "a"), (2, "b")], title="t")
    assert table.records() == [{"n": 1, "name": "a"}, {"n": 2, "name": "b"}] and table.column("n") == [1, 2]


def test_a_command_jobs_handle(tolu_client: Client, site: Site, app: App) -> None:
    c = tolu_client
    h = c.jobs.submit(app)
    child = c.jobs.submit(app, parents=[h])
    assert child.job.parents == [h.id] and child.state == S.AWAITING_PARENTS
    c.jobs.update(h.id, state=S.KILLED, state_data={"reason": "not today"})
    with pytest.raises(JobFailed) as failed:
        child.result(timeout=30, poll_sec=0.1)
    assert failed.value.reason == f"parent job {h.id} is KILLED"
    assert failed.value.output_path == f"{site.path}/data/work/{child.id}/job.out"
    with pytest.raises(JobFailed, match="not today"):
        h.wait(timeout=30)
    assert [j.id for j in c.jobs.as_completed([h, child], timeout=30)] == [h.id, child.id]
