"""Helpers shared by the server suite's tests (imported as ``server_helpers``)."""

from __future__ import annotations

import socket
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import requests

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


class Raw:
    """Plain HTTP as ``tolu_client``'s user, for bodies the typed client would not send."""

    def __init__(self, url: str, token: str) -> None:
        self.url = url
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {token}"

    def __call__(self, method: str, path: str, **kw: Any) -> requests.Response:
        return self.session.request(method, self.url + path, timeout=60, **kw)


def send_head(url: str, head: str, body: bytes = b"") -> tuple[int, str]:
    """Send raw request bytes (a head that announces more body than follows) and read
    the answer: the server must answer without waiting for the rest."""
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=30) as sock:
        sock.sendall(head.encode() + b"\r\n" + body)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    status_line, _, rest = data.decode("latin-1").partition("\r\n")
    return int(status_line.split()[1]), rest
