"""Fixtures for the transfer-service tests: a SiteContext with fast transfer settings
(``drive`` and ``report`` come from suites/site/conftest.py)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from harness.fixtures_site import SiteHandle
from runner.site.connect import site_client
from runner.site.service import SiteContext
from runner.site.settings import load

MakeContext = Callable[..., SiteContext]


@pytest.fixture
def make_ctx(tolu_site: SiteHandle) -> MakeContext:
    """``make_ctx(**transfer_settings)``: write them into settings.yml, return a fresh context."""

    def make(**transfer: Any) -> SiteContext:
        base: dict[str, Any] = {"poll_interval_sec": 0.05, "retry_backoff_sec": 0.05}
        tolu_site.write_settings(transfer={**base, **transfer})
        settings = load(tolu_site.path)
        client = site_client(tolu_site.path, settings)
        return SiteContext(site_dir=tolu_site.path, settings=settings, client=client)

    return make
