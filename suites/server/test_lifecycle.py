"""The job life cycle as the server enforces it over HTTP: checked transitions, the
Event history, and the steps the server takes by itself (docs/api.md)."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from server_helpers import SiteApp, make_site_app

from runner.client import Client
from runner.client.errors import Conflict
from runner.models import HOOKS, Event, Hook, Job
from runner.states import TRANSITIONS, JobState

S = JobState
ALL_STATES = sorted(JobState, key=str)


def history(client: Client, job_id: int) -> list[Event]:
    return sorted(client.events.filter(job_id=job_id), key=lambda e: e.id)


def assert_replays(client: Client, job: Job) -> None:
    """Events start at CREATED, chain from_state -> to_state, every step is in the
    table, and the last one is where the job is."""
    events = history(client, job.id)
    assert events, f"job {job.id} has no events"
    assert events[0].from_state is None and events[0].to_state is S.CREATED
    state = S.CREATED
    for ev in events[1:]:
        assert ev.from_state is state, (
            f"job {job.id}: event {ev.id} starts at {ev.from_state}, job was {state}"
        )
        assert ev.to_state in TRANSITIONS[state], (
            f"job {job.id}: {state} -> {ev.to_state} is not in the table"
        )
        state = ev.to_state
    assert state is job.state


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data(), hooks=st.lists(st.sampled_from(HOOKS), unique=True))
def test_random_transitions_stay_in_the_table(
    tolu_client: Client, data: st.DataObject, hooks: list[Hook]
) -> None:
    sa = make_site_app(tolu_client, hooks=hooks, name="app")
    job = tolu_client.jobs.create(
        app_id=sa.app.id, retry_limit=data.draw(st.integers(0, 2), label="retry_limit")
    )
    for _ in range(data.draw(st.integers(1, 8), label="steps")):
        current = job.state
        legal = sorted(TRANSITIONS[current], key=str)
        pool = st.sampled_from(legal) | st.sampled_from(ALL_STATES) if legal else st.sampled_from(ALL_STATES)
        target = data.draw(pool, label=f"from {current}")
        before = len(history(tolu_client, job.id))
        if target is current or target in TRANSITIONS[current]:
            job = tolu_client.jobs.update(job.id, state=target)
            # the asked-for state, or where the server's own steps carried it from there
            assert job.state in _reachable(target)
        else:
            with pytest.raises(Conflict) as err:
                tolu_client.jobs.update(job.id, state=target)
            assert f"job {job.id}: cannot go from {current} to {target}" in str(err.value)
            job = tolu_client.jobs.get(job.id)
            assert job.state is current
            assert len(history(tolu_client, job.id)) == before
    assert_replays(tolu_client, job)


def _reachable(start: JobState) -> set[JobState]:
    seen, todo = {start}, [start]
    while todo:
        for nxt in TRANSITIONS[todo.pop()]:
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def test_creation_without_parents_or_transfers_is_runnable(tolu_client: Client, site_app: SiteApp) -> None:
    (job,) = tolu_client.jobs.bulk_create([{"app_id": site_app.app.id}])
    assert job.state is S.PREPROCESSED
    assert [(e.from_state, e.to_state) for e in history(tolu_client, job.id)] == [
        (None, S.CREATED),
        (S.CREATED, S.STAGED_IN),
        (S.STAGED_IN, S.PREPROCESSED),
    ]


def test_run_done_goes_on_to_job_finished(tolu_client: Client, site_app: SiteApp) -> None:
    (job,) = tolu_client.jobs.bulk_create([{"app_id": site_app.app.id}])
    tolu_client.jobs.bulk_update([{"id": job.id, "state": "RUNNING"}])
    (done,) = tolu_client.jobs.bulk_update([{"id": job.id, "state": "RUN_DONE", "return_code": 0}])
    assert done.state is S.JOB_FINISHED and done.return_code == 0
    assert_replays(tolu_client, done)


def test_hooks_leave_their_steps_to_the_site(tolu_client: Client) -> None:
    sa = make_site_app(tolu_client, hooks=["preprocess", "postprocess", "handle_error"])
    (job,) = tolu_client.jobs.bulk_create([{"app_id": sa.app.id}])
    assert job.state is S.STAGED_IN
    job = tolu_client.jobs.update(job.id, state="PREPROCESSED")
    job = tolu_client.jobs.update(job.id, state="RUNNING")
    job = tolu_client.jobs.update(job.id, state="RUN_DONE")
    assert job.state is S.RUN_DONE
    job = tolu_client.jobs.update(job.id, state="POSTPROCESSED")
    assert job.state is S.JOB_FINISHED


def test_errors_retry_until_the_limit_then_fail(tolu_client: Client, site_app: SiteApp) -> None:
    (job,) = tolu_client.jobs.bulk_create([{"app_id": site_app.app.id, "retry_limit": 2}])
    for attempt in (1, 2):
        tolu_client.jobs.update(job.id, state="RUNNING")
        job = tolu_client.jobs.update(job.id, state="RUN_ERROR", return_code=1)
        assert job.state is S.RESTART_READY and job.retry_count == attempt
    tolu_client.jobs.update(job.id, state="RUNNING")
    job = tolu_client.jobs.update(job.id, state="RUN_TIMEOUT")
    assert job.state is S.FAILED and job.retry_count == 2
    last = history(tolu_client, job.id)[-1]
    assert last.to_state is S.FAILED and "retry limit 2" in last.data["reason"]
    assert_replays(tolu_client, job)


def test_dag_children_wait_then_run(tolu_client: Client, site_app: SiteApp) -> None:
    a = site_app.app.id
    jobs = tolu_client.jobs.bulk_create(
        [
            {"app_id": a, "key": "c", "parents": ["a", "b"]},
            {"app_id": a, "key": "a"},
            {"app_id": a, "key": "b"},
        ]
    )
    child, pa, pb = jobs
    assert child.state is S.AWAITING_PARENTS and sorted(child.parents) == sorted([pa.id, pb.id])
    for parent in (pa, pb):
        tolu_client.jobs.update(parent.id, state="RUNNING")
        tolu_client.jobs.update(parent.id, state="RUN_DONE")
        if parent is pa:
            assert tolu_client.jobs.get(child.id).state is S.AWAITING_PARENTS
    assert tolu_client.jobs.get(child.id).state is S.PREPROCESSED
    assert [j.id for j in tolu_client.jobs.filter(parent_id=pa.id)] == [child.id]
    # an existing, finished job as parent: the new child is runnable at once
    (late,) = tolu_client.jobs.bulk_create([{"app_id": a, "parents": [pa.id]}])
    assert late.state is S.PREPROCESSED


def test_a_failed_parent_fails_its_descendants_with_the_reason(
    tolu_client: Client, site_app: SiteApp
) -> None:
    a = site_app.app.id
    root, mid, leaf = tolu_client.jobs.bulk_create(
        [
            {"app_id": a, "key": "root", "retry_limit": 0},
            {"app_id": a, "key": "mid", "parents": ["root"]},
            {"app_id": a, "key": "leaf", "parents": ["mid"]},
        ]
    )
    tolu_client.jobs.update(root.id, state="RUNNING")
    assert tolu_client.jobs.update(root.id, state="RUN_ERROR").state is S.FAILED
    mid, leaf = tolu_client.jobs.get(mid.id), tolu_client.jobs.get(leaf.id)
    assert mid.state is S.FAILED and leaf.state is S.FAILED
    assert f"parent job {root.id} is FAILED" in history(tolu_client, mid.id)[-1].data["reason"]
    assert f"parent job {mid.id} is FAILED" in history(tolu_client, leaf.id)[-1].data["reason"]
    # a new child of a failed job fails at once, saying why
    (late,) = tolu_client.jobs.bulk_create([{"app_id": a, "parents": [root.id]}])
    assert late.state is S.FAILED
    # killing a parent fails its waiting children too
    p, c = tolu_client.jobs.bulk_create([{"app_id": a, "key": "p"}, {"app_id": a, "parents": ["p"]}])
    tolu_client.jobs.update(p.id, state="KILLED")
    assert tolu_client.jobs.get(c.id).state is S.FAILED
    assert f"parent job {p.id} is KILLED" in history(tolu_client, c.id)[-1].data["reason"]


def test_transfers_gate_the_job(tolu_client: Client, site_app: SiteApp) -> None:
    a = site_app.app.id
    (job,) = tolu_client.jobs.bulk_create(
        [
            {
                "app_id": a,
                "transfers": [
                    {"direction": "in", "source": "local:/data/a", "destination": "a"},
                    {"direction": "in", "source": "local:/data/b", "destination": "b"},
                    {"direction": "out", "source": "result", "destination": "local:/data/out"},
                ],
            }
        ]
    )
    assert job.state is S.READY
    items = {i.source: i for i in tolu_client.transfers.filter(job_id=job.id)}
    assert len(items) == 3 and all(i.state == "pending" for i in items.values())
    tolu_client.transfers.bulk_update([{"id": items["local:/data/a"].id, "state": "done"}])
    assert tolu_client.jobs.get(job.id).state is S.READY
    tolu_client.transfers.bulk_update([{"id": items["local:/data/b"].id, "state": "done"}])
    assert tolu_client.jobs.get(job.id).state is S.PREPROCESSED
    tolu_client.jobs.update(job.id, state="RUNNING")
    assert tolu_client.jobs.update(job.id, state="RUN_DONE").state is S.POSTPROCESSED
    tolu_client.transfers.bulk_update([{"id": items["result"].id, "state": "done"}])
    assert tolu_client.jobs.get(job.id).state is S.JOB_FINISHED


def test_a_transfer_error_fails_the_job(tolu_client: Client, site_app: SiteApp) -> None:
    (job,) = tolu_client.jobs.bulk_create(
        [
            {
                "app_id": site_app.app.id,
                "transfers": [{"direction": "in", "source": "local:/x", "destination": "x"}],
            }
        ]
    )
    (item,) = tolu_client.transfers.filter(job_id=job.id)
    tolu_client.transfers.bulk_update([{"id": item.id, "state": "error", "error": "no such file"}])
    job = tolu_client.jobs.get(job.id)
    assert job.state is S.FAILED
    assert "no such file" in history(tolu_client, job.id)[-1].data["reason"]


def test_bulk_update_is_all_or_nothing(tolu_client: Client, site_app: SiteApp) -> None:
    ok, bad = tolu_client.jobs.bulk_create([{"app_id": site_app.app.id}] * 2)
    with pytest.raises(Conflict) as err:
        tolu_client.jobs.bulk_update([{"id": ok.id, "state": "RUNNING"}, {"id": bad.id, "state": "RUN_DONE"}])
    assert f"job {bad.id}: cannot go from PREPROCESSED to RUN_DONE" in str(err.value)
    assert tolu_client.jobs.get(ok.id).state is S.PREPROCESSED
    assert len(history(tolu_client, ok.id)) == 3


def test_state_timestamp_and_data_are_recorded(tolu_client: Client, site_app: SiteApp) -> None:
    (job,) = tolu_client.jobs.bulk_create([{"app_id": site_app.app.id}])
    when = "2030-01-02T03:04:05+00:00"
    tolu_client.jobs.bulk_update(
        [{"id": job.id, "state": "RUNNING", "state_timestamp": when, "state_data": {"n": 1}}]
    )
    ev = history(tolu_client, job.id)[-1]
    assert ev.to_state is S.RUNNING and ev.data == {"n": 1}
    assert ev.timestamp.year == 2030 and ev.timestamp.hour == 3
