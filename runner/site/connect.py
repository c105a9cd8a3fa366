"""The client a site agent uses: the saved credentials, the site's server URL."""

from __future__ import annotations

from runner.client import Client
from runner.site.settings import SiteSettings


def site_client(settings: SiteSettings) -> Client:
    """``Client.from_config()`` ($TOLU_CONFIG or ~/.config/tolu), pointed at ``server_url`` if set."""
    client = Client.from_config()
    url = settings.server_url.rstrip("/")
    if url and url != str(client.url).rstrip("/"):
        client = Client(url, token=client.token)
    return client
