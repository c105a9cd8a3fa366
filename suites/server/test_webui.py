"""The server serves its web interface and API docs from the package, offline: no page
it sends loads anything from another host."""

from __future__ import annotations

import re

import requests

from harness.fixtures_server import ServerHandle

#: a page that names another host would fail on an air-gapped login node
FOREIGN = re.compile(r"""(src|href)\s*=\s*["']?(https?:)?//""", re.IGNORECASE)


def get(server: ServerHandle, path: str, **kw: object) -> requests.Response:
    return requests.get(server.url + path, timeout=60, **kw)  # type: ignore[arg-type]


def test_the_interface_is_served_at_ui_with_deep_links(tolu_server: ServerHandle) -> None:
    root = get(tolu_server, "/", allow_redirects=False)
    assert root.status_code == 307 and root.headers["location"] == "/ui/"
    index = get(tolu_server, "/ui/")
    assert index.status_code == 200 and '<div id="app">' in index.text
    assert not FOREIGN.search(index.text), "index.html loads something from another host"
    assert "script-src 'self'" in index.headers["content-security-policy"]
    assert index.headers["cache-control"] == "no-cache"
    # a client-side route answers the application; a missing asset stays a 404
    assert '<div id="app">' in get(tolu_server, "/ui/jobs/12").text
    assert get(tolu_server, "/ui/assets/not-there.js").status_code == 404
    # every asset the page names is here, cached for good, compressed on the way
    for path in re.findall(r'(?:src|href)="(/ui/[^"]+)"', index.text):
        asset = get(tolu_server, path, headers={"Accept-Encoding": "gzip"})
        assert asset.status_code == 200, path
        if path.startswith("/ui/assets/"):
            assert asset.headers["cache-control"].endswith("immutable")
            assert asset.headers.get("content-encoding") == "gzip"


def test_api_docs_work_offline(tolu_server: ServerHandle) -> None:
    for path in ("/docs", "/redoc"):
        page = get(tolu_server, path)
        assert page.status_code == 200
        assert not FOREIGN.search(page.text), f"{path} loads something from another host"
        for asset in re.findall(r'(?:src|href)="(/apidocs/[^"]+)"', page.text):
            assert get(tolu_server, asset).status_code == 200, asset
    assert get(tolu_server, "/openapi.json").json()["paths"]["/stats/history"]
