"""The client a site agent uses: the saved credentials, the site's server URL."""

from __future__ import annotations

from runner.client import Client
from runner.client.config import read_config
from runner.site.settings import SiteSettings

#: the agent backs off itself when the server is down (one warning for all
#: services), so its client gives up quickly instead of retrying per request.
AGENT_RETRIES = 1


def site_client(settings: SiteSettings, *, retries: int = AGENT_RETRIES, timeout: float = 60.0) -> Client:
    """A client from ``$TOLU_CONFIG`` (or ~/.config/tolu), pointed at ``server_url`` if set."""
    creds = read_config()
    url = settings.server_url.rstrip("/") or creds.url
    return Client(url, creds.token, username=creds.username, timeout=timeout, retries=retries)
