"""Launcher reports (POST /sessions/{id}/reports) and attempts: what a late report may do.

Each rule of runner/server/services/reports.py, on SQLite and PostgreSQL: a report
about the current attempt applies; one about an attempt that is over, or a job
another session holds, is moot and changes nothing; an attempt lost to a session's
end is reclaimed while nobody else took the job; every move to RESTART_READY starts
a new attempt.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from server_helpers import SiteApp, make_site_app

from runner.client import Client
from runner.models import JobReport
from runner.states import JobState

S = JobState


def rep(job_id: int, attempt: int, state: JobState, **fields: Any) -> JobReport:
    return JobReport(id=job_id, attempt=attempt, state=state, timestamp=datetime.now(UTC), **fields)


def states(client: Client, job_id: int) -> list[JobState]:
    return [e.to_state for e in sorted(client.events.filter(job_id=job_id), key=lambda e: e.id)]


def test_reports_apply_in_order_and_a_moot_one_sinks_nothing(tolu_client: Client, site_app: SiteApp) -> None:
    a, b = tolu_client.jobs.bulk_create([{"app_id": site_app.app.id}] * 2)
    s = tolu_client.sessions.create(site_app.site.id)
    tolu_client.sessions.acquire(s.id, max_num_jobs=2)
    tolu_client.jobs.update(b.id, state=S.KILLED)
    result = tolu_client.sessions.report(
        s.id,
        [
            rep(a.id, 0, S.RUNNING),
            rep(b.id, 0, S.RUNNING),
            rep(a.id, 0, S.RUN_DONE, return_code=0, data={"answer": 42}),
            rep(a.id, 0, S.RUN_DONE, return_code=0),  # the same report again: moot
        ],
    )
    assert result.accepted == 2
    assert [(m.id, m.state) for m in result.moot] == [(b.id, S.RUNNING), (a.id, S.RUN_DONE)]
    assert "KILLED" in result.moot[0].reason
    job = tolu_client.jobs.get(a.id)
    assert job.state is S.JOB_FINISHED and job.return_code == 0 and job.data == {"answer": 42}
    assert states(tolu_client, a.id).count(S.RUN_DONE) == 1
    assert tolu_client.jobs.get(b.id).state is S.KILLED


def test_a_job_held_by_another_session_is_not_counted_twice(tolu_client: Client, site_app: SiteApp) -> None:
    (job,) = tolu_client.jobs.bulk_create([{"app_id": site_app.app.id}])
    first = tolu_client.sessions.create(site_app.site.id)
    tolu_client.sessions.acquire(first.id, max_num_jobs=1)
    tolu_client.sessions.delete(first.id)  # lost before its RUNNING report landed: released
    second = tolu_client.sessions.create(site_app.site.id)
    assert [j.id for j in tolu_client.sessions.acquire(second.id, max_num_jobs=1)] == [job.id]
    empty = tolu_client.sessions.report(second.id, [])
    assert empty.accepted == 0 and empty.moot == []
    third = tolu_client.sessions.create(site_app.site.id)
    result = tolu_client.sessions.report(third.id, [rep(job.id, 0, S.RUNNING), rep(job.id, 0, S.RUN_DONE)])
    assert result.accepted == 0
    assert all(f"held by session {second.id}" in m.reason for m in result.moot)
    done = [rep(job.id, 0, S.RUNNING), rep(job.id, 0, S.RUN_DONE, return_code=0)]
    tolu_client.sessions.report(second.id, done)
    assert states(tolu_client, job.id).count(S.RUN_DONE) == 1


def test_a_late_running_report_makes_the_reporter_hold_the_job(
    tolu_client: Client, site_app: SiteApp
) -> None:
    (job,) = tolu_client.jobs.bulk_create([{"app_id": site_app.app.id}])
    first = tolu_client.sessions.create(site_app.site.id)
    tolu_client.sessions.acquire(first.id, max_num_jobs=1)
    tolu_client.sessions.delete(first.id)
    renewed = tolu_client.sessions.create(site_app.site.id)
    result = tolu_client.sessions.report(renewed.id, [rep(job.id, 0, S.RUNNING)])
    assert result.accepted == 1
    held = tolu_client.jobs.get(job.id)
    assert held.state is S.RUNNING and held.session_id == renewed.id
    other = tolu_client.sessions.create(site_app.site.id)
    assert tolu_client.sessions.acquire(other.id, max_num_jobs=1) == []


def test_an_attempt_lost_to_a_session_end_is_reclaimed_while_nobody_took_it(
    tolu_client: Client, site_app: SiteApp
) -> None:
    (job,) = tolu_client.jobs.bulk_create([{"app_id": site_app.app.id}])
    first = tolu_client.sessions.create(site_app.site.id)
    tolu_client.sessions.acquire(first.id, max_num_jobs=1)
    tolu_client.sessions.report(first.id, [rep(job.id, 0, S.RUNNING)])
    tolu_client.sessions.delete(first.id)  # as an expiry: RUN_TIMEOUT -> RESTART_READY
    after = tolu_client.jobs.get(job.id)
    assert after.state is S.RESTART_READY and after.attempt == 1 and after.retry_count == 1
    renewed = tolu_client.sessions.create(site_app.site.id)
    result = tolu_client.sessions.report(renewed.id, [rep(job.id, 0, S.RUN_DONE, return_code=0)])
    assert result.accepted == 1, result
    done = tolu_client.jobs.get(job.id)
    assert done.state is S.JOB_FINISHED and done.attempt == 0 and done.retry_count == 0
    seq = states(tolu_client, job.id)
    assert seq[-7:-3] == [S.RUN_TIMEOUT, S.RESTART_READY, S.RUNNING, S.RUN_DONE], seq


def test_a_lost_attempt_taken_by_another_session_is_not_reclaimed(
    tolu_client: Client, site_app: SiteApp
) -> None:
    (job,) = tolu_client.jobs.bulk_create([{"app_id": site_app.app.id}])
    first = tolu_client.sessions.create(site_app.site.id)
    tolu_client.sessions.acquire(first.id, max_num_jobs=1)
    tolu_client.sessions.report(first.id, [rep(job.id, 0, S.RUNNING)])
    tolu_client.sessions.delete(first.id)
    other = tolu_client.sessions.create(site_app.site.id)
    tolu_client.sessions.acquire(other.id, max_num_jobs=1)
    tolu_client.sessions.report(other.id, [rep(job.id, 1, S.RUNNING)])
    renewed = tolu_client.sessions.create(site_app.site.id)
    result = tolu_client.sessions.report(renewed.id, [rep(job.id, 0, S.RUN_DONE, return_code=0)])
    assert result.accepted == 0 and "held by session" in result.moot[0].reason
    tolu_client.sessions.report(other.id, [rep(job.id, 1, S.RUN_ERROR, return_code=2)])
    # the session's retry ended attempt 1; a late success of attempt 0 is moot now
    result = tolu_client.sessions.report(renewed.id, [rep(job.id, 0, S.RUN_DONE, return_code=0)])
    assert result.accepted == 0 and "attempt 0 is over" in result.moot[0].reason
    assert tolu_client.jobs.get(job.id).attempt == 2


def test_a_retry_always_reruns_the_exact_sequence(tolu_client: Client) -> None:
    """Issue 16 defect 3: a job that exited 0, was failed by its postprocess hook and
    moved to RESTART_READY by its owner must run again: the success noted for the
    first attempt is moot, and the job is offered in a new attempt."""
    site_app = make_site_app(tolu_client, hooks=["postprocess"], name="hooked")
    (job,) = tolu_client.jobs.bulk_create([{"app_id": site_app.app.id}])
    s = tolu_client.sessions.create(site_app.site.id)
    tolu_client.sessions.acquire(s.id, max_num_jobs=1)
    tolu_client.sessions.report(s.id, [rep(job.id, 0, S.RUNNING), rep(job.id, 0, S.RUN_DONE, return_code=0)])
    tolu_client.sessions.delete(s.id)
    assert tolu_client.jobs.get(job.id).state is S.RUN_DONE  # waits for its hook
    tolu_client.jobs.update(job.id, state=S.FAILED, state_data={"reason": "postprocess: output invalid"})
    retried = tolu_client.jobs.update(job.id, state=S.RESTART_READY)
    assert retried.attempt == 1 and retried.retry_count == 0
    # the next launcher finds the note of attempt 0 and proposes it: moot
    nxt = tolu_client.sessions.create(site_app.site.id)
    assert [j.attempt for j in tolu_client.sessions.acquire(nxt.id, max_num_jobs=1)] == [1]
    result = tolu_client.sessions.report(
        nxt.id, [rep(job.id, 0, S.RUNNING), rep(job.id, 0, S.RUN_DONE, return_code=0)]
    )
    assert result.accepted == 0 and all("attempt 0 is over" in m.reason for m in result.moot)
    assert tolu_client.jobs.get(job.id).state is S.RESTART_READY
    tolu_client.sessions.report(nxt.id, [rep(job.id, 1, S.RUNNING)])
    assert tolu_client.jobs.get(job.id).state is S.RUNNING


def test_every_move_to_restart_ready_starts_an_attempt(tolu_client: Client, site_app: SiteApp) -> None:
    (job,) = tolu_client.jobs.bulk_create([{"app_id": site_app.app.id, "retry_limit": 5}])
    assert job.attempt == 0
    s = tolu_client.sessions.create(site_app.site.id)
    tolu_client.sessions.acquire(s.id, max_num_jobs=1)
    tolu_client.sessions.report(s.id, [rep(job.id, 0, S.RUNNING), rep(job.id, 0, S.RUN_ERROR, return_code=1)])
    assert tolu_client.jobs.get(job.id).attempt == 1  # the server's retry
    tolu_client.jobs.update(job.id, state=S.KILLED)
    assert tolu_client.jobs.update(job.id, state=S.RESTART_READY).attempt == 2  # the owner's


def test_a_resent_report_of_an_attempt_that_is_over_is_moot_while_its_session_holds_the_next(
    tolu_client: Client, site_app: SiteApp
) -> None:
    """The session that ran attempt 0 holds attempt 1 now, and RESTART_READY -> RUNNING is a
    legal move: only the attempt tells a resent RUNNING of the first run from the second's."""
    (job,) = tolu_client.jobs.bulk_create([{"app_id": site_app.app.id, "retry_limit": 2}])
    s = tolu_client.sessions.create(site_app.site.id)
    tolu_client.sessions.acquire(s.id, max_num_jobs=1)
    tolu_client.sessions.report(s.id, [rep(job.id, 0, S.RUNNING), rep(job.id, 0, S.RUN_ERROR, return_code=1)])
    assert [j.attempt for j in tolu_client.sessions.acquire(s.id, max_num_jobs=1)] == [1]
    result = tolu_client.sessions.report(s.id, [rep(job.id, 0, S.RUNNING)])
    assert result.accepted == 0 and "attempt 0 is over" in result.moot[0].reason
    assert tolu_client.jobs.get(job.id).state is S.RESTART_READY
    assert tolu_client.sessions.report(s.id, [rep(job.id, 1, S.RUNNING)]).accepted == 1
    assert tolu_client.jobs.get(job.id).state is S.RUNNING


def test_an_outcome_that_carries_its_start_records_the_running_first(
    tolu_client: Client, site_app: SiteApp
) -> None:
    """A task that ended before its launcher sent its start says both in one report
    (``run_started``): the history is the same as from two reports, the start once."""
    a, b, c = tolu_client.jobs.bulk_create([{"app_id": site_app.app.id}] * 3)
    s = tolu_client.sessions.create(site_app.site.id)
    tolu_client.sessions.acquire(s.id, max_num_jobs=3)
    t0 = datetime(2026, 1, 1, 12, 0, 0, 250000, tzinfo=UTC)
    t1 = datetime(2026, 1, 1, 12, 0, 1, 500000, tzinfo=UTC)
    tolu_client.sessions.report(s.id, [rep(b.id, 0, S.RUNNING)])
    tolu_client.jobs.update(c.id, state=S.KILLED)
    result = tolu_client.sessions.report(
        s.id,
        [
            JobReport(id=a.id, attempt=0, state=S.RUN_DONE, timestamp=t1, return_code=0, run_started=t0),
            # already RUNNING on the server: its start is not recorded again
            rep(b.id, 0, S.RUN_ERROR, return_code=3, run_started=t0),
            # killed meanwhile: moot whole, no RUNNING either
            rep(c.id, 0, S.RUN_DONE, return_code=0, run_started=t0),
        ],
    )
    # the answer was lost: the same report again changes nothing
    again = tolu_client.sessions.report(
        s.id, [JobReport(id=a.id, attempt=0, state=S.RUN_DONE, timestamp=t1, return_code=0, run_started=t0)]
    )
    assert result.accepted == 2 and [(m.id, m.state) for m in result.moot] == [(c.id, S.RUN_DONE)], result
    assert "KILLED" in result.moot[0].reason and S.RUNNING not in states(tolu_client, c.id)
    assert again.accepted == 0 and "RUN_DONE" in again.moot[0].reason, again
    history = sorted(tolu_client.events.filter(job_id=a.id), key=lambda e: e.id)
    run = [(e.from_state, e.to_state, e.timestamp) for e in history if e.to_state in (S.RUNNING, S.RUN_DONE)]
    assert run == [(S.PREPROCESSED, S.RUNNING, t0), (S.RUNNING, S.RUN_DONE, t1)]
    assert states(tolu_client, a.id)[-3:] == [S.POSTPROCESSED, S.STAGED_OUT, S.JOB_FINISHED]
    assert tolu_client.jobs.get(a.id).return_code == 0
    assert states(tolu_client, b.id).count(S.RUNNING) == 1
    assert tolu_client.jobs.get(b.id).return_code == 3
