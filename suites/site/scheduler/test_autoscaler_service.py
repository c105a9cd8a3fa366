"""The autoscaler service against a real server, on the local scheduler with the real launcher:
it asks for an allocation only when there is work, does not pile up requests on a steady
backlog, runs the backlog, and withdraws the idle allocation after the idle timeout."""

from __future__ import annotations

import pytest
from sched_helpers import context, drive

from harness.fixtures_site import MakeJobs, SiteHandle
from runner.client import Client
from runner.site.autoscaler import ORIGIN, ORIGIN_OPTION, Autoscaler
from runner.site.scheduler_service import SchedulerService
from runner.states import BatchJobState as B

pytestmark = pytest.mark.usefixtures("reap_batch_jobs")


def test_autoscaler_runs_backlog_then_withdraws_idle_allocation(
    tolu_site: SiteHandle, tolu_client: Client, make_jobs: MakeJobs
) -> None:
    tolu_site.write_settings(
        scheduler={"name": "local", "poll_interval_sec": 0.5},
        # the launcher would wait 5 min for work: the autoscaler's idle timeout must end it first
        launcher={"idle_timeout_sec": 300},
        autoscaler={
            "enabled": True, "min_nodes": 1, "max_nodes": 1, "min_wall_time_min": 5,
            "max_wall_time_min": 10, "max_queued": 1, "idle_timeout_min": 0.05, "job_mode": "serial",
            "poll_interval_sec": 0.5,
        },
    )
    ctx = context(tolu_site, tolu_client)
    autoscaler, scheduler = Autoscaler(ctx), SchedulerService(ctx)

    autoscaler.run_once()
    assert not autoscaler.last_decision.submit
    assert tolu_client.batch_jobs.filter(site_id=tolu_site.id) == [], "asked for nodes with nothing to run"

    jobs = make_jobs("hello", 10)
    autoscaler.run_once()
    autoscaler.run_once()  # a steady backlog: no second request
    made = tolu_client.batch_jobs.filter(site_id=tolu_site.id)
    assert len(made) == 1 and made[0].options[ORIGIN_OPTION] == ORIGIN
    assert made[0].num_nodes == 1 and 5 <= made[0].wall_time_min <= 10

    def all_finished() -> bool:
        return {j.state.value for j in tolu_client.jobs.filter(id=[j.id for j in jobs])} == {"JOB_FINISHED"}

    drive([autoscaler, scheduler], all_finished, timeout=120, pause=0.5, what="10 jobs")
    drive(
        [autoscaler, scheduler],
        lambda: tolu_client.batch_jobs.get(made[0].id).state is B.FINISHED,
        timeout=60,
        what="the idle allocation to be withdrawn",
    )
    withdrawn = tolu_client.batch_jobs.get(made[0].id)
    assert "cancel_requested_at" in withdrawn.status_info, "it ended by itself, not withdrawn"
    assert len(tolu_client.batch_jobs.filter(site_id=tolu_site.id)) == 1
