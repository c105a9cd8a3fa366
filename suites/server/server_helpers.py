"""Helpers shared by the server suite's tests (imported as ``server_helpers``)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from runner.client import Client
from runner.models import App, Hook, Site


@dataclass
class SiteApp:
    site: Site
    app: App


def make_site_app(client: Client, *, hooks: list[Hook] | None = None, name: str = "echo") -> SiteApp:
    site = client.sites.create(name=f"site-{uuid.uuid4().hex[:8]}", path="/tmp/site", hostname="localhost")
    app = client.apps.create(
        site_id=site.id, name=name, command_template="echo {x}", parameters={"x": "1"}, hooks=hooks or []
    )
    return SiteApp(site, app)
