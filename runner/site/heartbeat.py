"""The site heartbeat: tells the server this site's agent is alive (always on).

The first heartbeat of an agent also sends the site's settings summary: settings
edited since ``tolu site init`` (a transfer location added, say) reach the server
when the agent restarts, so jobs naming the new location are accepted.
"""

from __future__ import annotations

from datetime import UTC, datetime

from runner.site.service import Service, SiteContext, register_service

HEARTBEAT_SEC = 30.0


@register_service("heartbeat")
class HeartbeatService(Service):
    def __init__(self, ctx: SiteContext) -> None:
        super().__init__(ctx)
        self.period_sec = HEARTBEAT_SEC
        self.summary_sent = False

    def run_once(self) -> None:
        if self.summary_sent:
            self.ctx.client.sites.heartbeat(self.ctx.site_id)
            return
        self.ctx.client.sites.update(
            self.ctx.site_id, settings_summary=self.ctx.settings.summary(), last_heartbeat=datetime.now(UTC)
        )
        self.summary_sent = True
