"""Bulk updates on the set-based path (runner/server/transitions.py) against the
Advancer, over HTTP, on PostgreSQL (on SQLite every row takes the Advancer).

A row is plain when its job's app has no hooks and the job has no transfer items or
children; the server applies such rows with a few statements and sends every other
row through the Advancer. Sending ``retry_limit`` (unchanged) with an update makes
the row take the Advancer's path, so the same story told twice, once each way,
must leave the same jobs and the same Events.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from server_helpers import Raw, SiteApp, make_site_app

from runner.client import Client
from runner.client.errors import Conflict, NotFound
from runner.models import HOOKS, Event, Hook, Job
from runner.server import transitions
from runner.states import TRANSITIONS, JobState

pytestmark = pytest.mark.databases("postgresql")

S = JobState
ALL_STATES = sorted(JobState, key=str)
#: the launcher's clock in these tests, years away from the server's
REPORTED = datetime(2031, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)


def history(client: Client, job_id: int) -> list[Event]:
    return sorted(client.events.filter(job_id=job_id), key=lambda e: e.id)


def story(client: Client, job_id: int) -> list[tuple[Any, ...]]:
    """A job's Events without what differs between two jobs (ids, the server's clock)."""
    return [
        (e.from_state, e.to_state, e.data, e.timestamp if e.timestamp.year == REPORTED.year else "now")
        for e in history(client, job_id)
    ]


def outcome(job: Job) -> tuple[Any, ...]:
    return (job.state, job.return_code, job.retry_count, job.retry_limit, job.session_id is None)


def test_the_routes_come_from_the_advancer() -> None:
    run_done = transitions.ROUTES[S.RUNNING, S.RUN_DONE]
    assert [b for _a, b in run_done.steps] == [S.POSTPROCESSED, S.STAGED_OUT, S.JOB_FINISHED]
    assert run_done.asks_hooks and run_done.counts_out and run_done.ends
    running = transitions.ROUTES[S.PREPROCESSED, S.RUNNING]
    assert running.steps == () and running.keeps_session and not running.asks_hooks
    # every route is a transition the table lists; retries and their counts are not plain
    assert all(target in TRANSITIONS[source] for source, target in transitions.ROUTES)
    assert (S.RUNNING, S.RUN_ERROR) not in transitions.ROUTES
    assert (S.RUN_ERROR, S.RESTART_READY) not in transitions.ROUTES


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data(), hooks=st.lists(st.sampled_from(HOOKS), unique=True, max_size=2))
def test_plain_rows_end_as_the_advancer_ends_them(
    tolu_client: Client, data: st.DataObject, hooks: list[Hook]
) -> None:
    sa = make_site_app(tolu_client, hooks=hooks, name="app")
    limit = data.draw(st.integers(0, 2), label="retry_limit")
    plain, general = tolu_client.jobs.bulk_create([{"app_id": sa.app.id, "retry_limit": limit}] * 2)
    for step in range(data.draw(st.integers(1, 6), label="requests")):
        state = tolu_client.jobs.get(plain.id).state
        # one to three updates of the job in one request, mostly legal ones
        updates: list[dict[str, Any]] = []
        for k in range(data.draw(st.integers(1, 3), label="updates")):
            legal = sorted(TRANSITIONS[state], key=str)
            pool = st.sampled_from(ALL_STATES)
            if legal:
                pool = st.sampled_from(legal) | pool
            target = data.draw(pool, label=f"from {state}")
            update: dict[str, Any] = {
                "state": target,
                "state_timestamp": REPORTED + timedelta(seconds=step, milliseconds=k),
            }
            if target in (S.RUN_DONE, S.RUN_ERROR):
                update["return_code"] = 0 if target is S.RUN_DONE else 3
            if data.draw(st.booleans(), label="with data"):
                update["state_data"] = {"step": step, "k": k}
            updates.append(update)
            state = target
        answers = []
        for job, extra in ((plain, {}), (general, {"retry_limit": limit})):
            try:
                tolu_client.jobs.bulk_update([{"id": job.id, **u, **extra} for u in updates], returning=False)
                answers.append("ok")
            except Conflict as exc:
                answers.append(str(exc).replace(f"job {job.id}:", "job N:"))
        assert answers[0] == answers[1]
    a, b = tolu_client.jobs.get(plain.id), tolu_client.jobs.get(general.id)
    assert outcome(a) == outcome(b)
    assert story(tolu_client, a.id) == story(tolu_client, b.id)


def test_a_launcher_batch_runs_and_finishes_on_the_set_based_path(
    tolu_client: Client, site_app: SiteApp
) -> None:
    jobs = tolu_client.jobs.bulk_create([{"app_id": site_app.app.id, "tags": {"batch": "b"}}] * 50)
    session = tolu_client.sessions.create(site_app.site.id)
    held = tolu_client.sessions.acquire(session.id, max_num_jobs=50, filter_tags={"batch": "b"})
    assert sorted(j.id for j in held) == sorted(j.id for j in jobs)
    assert all(j.session_id == session.id for j in held)
    started = REPORTED
    ended = datetime(2031, 5, 6, 9, 8, 10, tzinfo=timezone(timedelta(hours=2)))  # 07:08:10 UTC
    tolu_client.jobs.bulk_update(
        [{"id": j.id, "state": "RUNNING", "state_timestamp": started} for j in held], returning=False
    )
    running = tolu_client.jobs.filter(tags={"batch": "b"})
    assert {j.state for j in running} == {S.RUNNING} and {j.session_id for j in running} == {session.id}
    done = tolu_client.jobs.bulk_update(
        [
            {
                "id": j.id,
                "state": "RUN_DONE",
                "return_code": 0,
                "state_timestamp": ended,
                "state_data": {"i": i},
            }
            for i, j in enumerate(held)
        ]
    )
    assert [j.id for j in done] == [j.id for j in held]
    assert {(j.state, j.return_code, j.session_id) for j in done} == {(S.JOB_FINISHED, 0, None)}
    for i, job in enumerate(held):
        events = history(tolu_client, job.id)
        assert [(e.from_state, e.to_state) for e in events] == [
            (None, S.CREATED),
            (S.CREATED, S.STAGED_IN),
            (S.STAGED_IN, S.PREPROCESSED),
            (S.PREPROCESSED, S.RUNNING),
            (S.RUNNING, S.RUN_DONE),
            (S.RUN_DONE, S.POSTPROCESSED),
            (S.POSTPROCESSED, S.STAGED_OUT),
            (S.STAGED_OUT, S.JOB_FINISHED),
        ]
        assert events[3].timestamp == started
        assert events[4].timestamp == datetime(2031, 5, 6, 7, 8, 10, tzinfo=UTC)
        assert events[4].data == {"i": i} and events[5].data == {}
        # the server's own steps happened when it took them, on its clock
        assert events[5].timestamp == events[6].timestamp == events[7].timestamp != events[4].timestamp


def test_a_mixed_batch_takes_each_row_its_way(tolu_client: Client) -> None:
    plain_app = make_site_app(tolu_client, name="plain").app
    hooked_app = make_site_app(tolu_client, hooks=["postprocess"], name="hooked").app
    a, b = tolu_client.jobs.bulk_create([{"app_id": plain_app.id}] * 2)
    hooked, parent = tolu_client.jobs.bulk_create(
        [{"app_id": hooked_app.id}, {"app_id": plain_app.id, "key": "p"}]
    )
    (child,) = tolu_client.jobs.bulk_create([{"app_id": plain_app.id, "parents": [parent.id]}])
    everyone = [a, b, hooked, parent]
    tolu_client.jobs.bulk_update([{"id": j.id, "state": "RUNNING"} for j in everyone], returning=False)
    tolu_client.jobs.bulk_update(
        [{"id": j.id, "state": "RUN_DONE", "return_code": 0} for j in everyone], returning=False
    )
    states = {j.id: j.state for j in tolu_client.jobs.filter(id=[j.id for j in [*everyone, child]])}
    assert states == {
        a.id: S.JOB_FINISHED,
        b.id: S.JOB_FINISHED,
        hooked.id: S.RUN_DONE,  # its postprocess hook is the site's to run
        parent.id: S.JOB_FINISHED,
        child.id: S.PREPROCESSED,  # its parent finished: runnable now
    }


def test_a_refused_or_missing_row_leaves_the_plain_ones_unwritten(
    tolu_client: Client, site_app: SiteApp, raw: Raw, make_user: Callable[[], Client]
) -> None:
    ok, bad = tolu_client.jobs.bulk_create([{"app_id": site_app.app.id}] * 2)
    before = [len(history(tolu_client, j.id)) for j in (ok, bad)]
    run = {"id": ok.id, "state": "RUNNING"}
    with pytest.raises(Conflict, match=f"job {bad.id}: cannot go from PREPROCESSED to STAGED_OUT"):
        tolu_client.jobs.bulk_update([run, {"id": bad.id, "state": "STAGED_OUT"}])
    with pytest.raises(NotFound, match="job 987654321 not found"):
        tolu_client.jobs.bulk_update([run, {"id": 987654321, "state": "RUNNING"}])
    # another user's job is as missing as one that never was
    bob = make_user()
    (bobs,) = bob.jobs.bulk_create([{"app_id": make_site_app(bob).app.id}])
    with pytest.raises(NotFound, match=f"job {bobs.id} not found"):
        tolu_client.jobs.bulk_update([run, {"id": bobs.id, "state": "RUNNING"}])
    assert bob.jobs.get(bobs.id).state is S.PREPROCESSED
    resp = raw("PATCH", "/jobs", json=[run, {"id": bad.id, "state": "bogus"}])
    assert resp.status_code == 422 and resp.json()["detail"][0]["loc"] == ["body", 1, "state"]
    assert tolu_client.jobs.get(ok.id).state is S.PREPROCESSED
    assert [len(history(tolu_client, j.id)) for j in (ok, bad)] == before


def test_a_job_named_twice_moves_twice_in_order(tolu_client: Client, site_app: SiteApp) -> None:
    (job,) = tolu_client.jobs.bulk_create([{"app_id": site_app.app.id}])
    tolu_client.jobs.bulk_update(
        [{"id": job.id, "state": "RUNNING"}, {"id": job.id, "state": "RUN_DONE", "return_code": 0}],
        returning=False,
    )
    assert tolu_client.jobs.get(job.id).state is S.JOB_FINISHED
    assert [e.to_state for e in history(tolu_client, job.id)][3:5] == [S.RUNNING, S.RUN_DONE]
