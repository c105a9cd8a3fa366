"""Deleting a job whose children wait for it: they fail with the reason (issue 16, defect 4)."""

from __future__ import annotations

from server_helpers import SiteApp

from runner.client import Client
from runner.states import JobState

S = JobState


def test_deleting_a_parent_fails_its_waiting_children_with_the_reason(
    tolu_client: Client, site_app: SiteApp
) -> None:
    a = site_app.app.id
    parent, other, child, grandchild = tolu_client.jobs.bulk_create(
        [
            {"app_id": a, "key": "p"},
            {"app_id": a, "key": "o"},
            {"app_id": a, "key": "c", "parents": ["p", "o"]},
            {"app_id": a, "key": "g", "parents": ["c"]},
        ]
    )
    assert tolu_client.jobs.get(child.id).state is S.AWAITING_PARENTS
    tolu_client.jobs.delete(parent.id)
    failed = tolu_client.jobs.get(child.id)
    assert failed.state is S.FAILED
    (event,) = tolu_client.events.filter(job_id=child.id, to_state="FAILED")
    assert event.data["reason"] == f"parent job {parent.id} was deleted"
    (event,) = tolu_client.events.filter(job_id=grandchild.id, to_state="FAILED")
    assert event.data["reason"] == f"parent job {child.id} is FAILED"
    assert tolu_client.jobs.get(other.id).state is S.PREPROCESSED  # the other parent is untouched


def test_deleting_a_finished_parent_or_the_whole_dag_strands_nobody(
    tolu_client: Client, site_app: SiteApp
) -> None:
    a = site_app.app.id
    done, waiting_on, child = tolu_client.jobs.bulk_create(
        [
            {"app_id": a, "key": "d"},
            {"app_id": a, "key": "w"},
            {"app_id": a, "key": "c", "parents": ["d", "w"]},
        ]
    )
    s = tolu_client.sessions.create(site_app.site.id)
    tolu_client.sessions.acquire(s.id, max_num_jobs=1, app_ids=[a], filter_tags={})
    for state in (S.RUNNING, S.RUN_DONE):
        tolu_client.jobs.update(done.id, state=state)
    assert tolu_client.jobs.get(done.id).state is S.JOB_FINISHED
    tolu_client.jobs.delete(done.id)
    assert tolu_client.jobs.get(child.id).state is S.AWAITING_PARENTS  # still waits for the other
    assert tolu_client.jobs.delete_where(id=[waiting_on.id, child.id]) == 2
