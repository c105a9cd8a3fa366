"""The site heartbeat: tells the server this site's agent is alive (always on)."""

from __future__ import annotations

from runner.site.service import Service, SiteContext, register_service

HEARTBEAT_SEC = 30.0


@register_service("heartbeat")
class HeartbeatService(Service):
    def __init__(self, ctx: SiteContext) -> None:
        super().__init__(ctx)
        self.period_sec = HEARTBEAT_SEC

    def run_once(self) -> None:
        self.ctx.client.sites.heartbeat(self.ctx.site_id)
