"""The queue maintainer: keep ``depth`` BatchJobs of one fixed shape in flight while there is work.

"In flight" is asked for, queued or running: on a busy facility that keeps one
allocation waiting behind the running one; on the ``local`` scheduler (no queue)
it keeps ``depth`` launchers alive. It counts only its own BatchJobs (marked in
their options), so batch jobs a user submits by hand are left alone, and it never
withdraws anything: with no work left, its launchers end on their idle timeout or
wall time and it simply stops asking. Work is every job in a BACKLOG state that
matches ``filter_tags`` (one ``GET /jobs/counts``).
"""

from __future__ import annotations

from runner.site.service import Service, SiteContext, register_service
from runner.states import BACKLOG, BatchJobState

B = BatchJobState
IN_FLIGHT = (B.PENDING_SUBMISSION, B.QUEUED, B.RUNNING, B.UNKNOWN)
ORIGIN_OPTION = "_origin"
ORIGIN = "queue_maintainer"


def to_submit(backlog: int, in_flight: int, depth: int) -> int:
    """How many BatchJobs to create now (pure)."""
    if backlog <= 0:
        return 0
    return max(0, depth - in_flight)


@register_service("queue_maintainer")
class QueueMaintainer(Service):
    def __init__(self, ctx: SiteContext) -> None:
        super().__init__(ctx)
        self.settings = ctx.settings.queue_maintainer
        self.period_sec = self.settings.poll_interval_sec

    def run_once(self) -> None:
        s, client, site_id = self.settings, self.ctx.client, self.ctx.site_id
        counts = client.jobs.counts(site_id=site_id, state=sorted(BACKLOG), tags=s.filter_tags or None)
        backlog = sum(counts.values())
        mine = [
            bj for bj in client.batch_jobs.filter(site_id=site_id, state=IN_FLIGHT)
            if bj.options.get(ORIGIN_OPTION) == ORIGIN
        ]
        for _ in range(to_submit(backlog, len(mine), s.depth)):
            bj = client.batch_jobs.create(
                site_id=site_id, num_nodes=s.num_nodes, wall_time_min=s.wall_time_min, job_mode=s.job_mode,
                project=s.project, queue=s.queue, filter_tags=s.filter_tags,
                options={ORIGIN_OPTION: ORIGIN},
            )
            self.log.info("%d job(s) waiting, %d/%d batch job(s) in flight: requested batch job %s "
                          "(%d node(s) x %d min)", backlog, len(mine), s.depth, bj.id, s.num_nodes,
                          s.wall_time_min)
            mine.append(bj)
