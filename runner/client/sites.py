"""``client.sites``: the user's sites (one per site directory)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from runner.client._base import Manager, _changes
from runner.models import Page, Site, SiteUpdate


class SiteManager(Manager):
    """``client.sites``: the user's sites (one per site directory)."""

    path = "/sites"

    def create(
        self, *, name: str, path: str, hostname: str, settings_summary: dict[str, Any] | None = None
    ) -> Site:
        """Register a site. 409 (Conflict) if this user already has one of that name."""
        body = {"name": name, "path": path, "hostname": hostname, "settings_summary": settings_summary or {}}
        result: Site = self._send("POST", Site, self.path, body)
        return result

    def get(self, id: int) -> Site:
        return self._get_one(Site, f"{self.path}/{id}")

    def filter(self, *, name: str | None = None, limit: int | None = None) -> list[Site]:
        return self._follow(Site, {"name": name}, limit)

    def page(self, *, name: str | None = None, limit: int = 100, offset: int = 0) -> Page[Site]:
        return self._page(Site, {"name": name, "limit": limit, "offset": offset})

    def update(
        self,
        id: int,
        *,
        name: str | None = None,
        path: str | None = None,
        hostname: str | None = None,
        settings_summary: dict[str, Any] | None = None,
        last_heartbeat: datetime | None = None,
    ) -> Site:
        body = SiteUpdate(
            **_changes(
                name=name,
                path=path,
                hostname=hostname,
                settings_summary=settings_summary,
                last_heartbeat=last_heartbeat,
            )
        )
        result: Site = self._send("PATCH", Site, f"{self.path}/{id}", body)
        return result

    def heartbeat(self, id: int) -> Site:
        """Record that the site agent is alive now."""
        return self.update(id, last_heartbeat=datetime.now(UTC))

    def delete(self, id: int) -> None:
        """Delete the site and its apps, jobs and batch jobs."""
        self._delete(f"{self.path}/{id}")
