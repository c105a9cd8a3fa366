"""The client a site agent uses: the site's token (else the user's login), the site's server URL."""

from __future__ import annotations

from pathlib import Path

from runner.client import Client
from runner.site.settings import SiteSettings

#: the agent backs off itself when the server is down (one warning for all
#: services), so its client gives up quickly instead of retrying per request.
AGENT_RETRIES = 1


def site_client(
    site_dir: Path, settings: SiteSettings, *, retries: int = AGENT_RETRIES, timeout: float = 60.0
) -> Client:
    """The site's client (``Client.for_site``), pointed at ``server_url`` if set."""
    return Client.for_site(site_dir, url=settings.server_url, timeout=timeout, retries=retries)
