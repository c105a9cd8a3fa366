"""Fixtures for the processing-service tests: a SiteContext on the harness site
(``drive`` and ``report`` come from suites/site/conftest.py)."""

from __future__ import annotations

import pytest

from harness.fixtures_site import SiteHandle
from runner.site.connect import site_client
from runner.site.service import SiteContext
from runner.site.settings import load


@pytest.fixture
def site_ctx(tolu_site: SiteHandle) -> SiteContext:
    tolu_site.write_settings(processing={"workers": 2, "poll_interval_sec": 0.05})
    settings = load(tolu_site.path)
    client = site_client(tolu_site.path, settings)
    return SiteContext(site_dir=tolu_site.path, settings=settings, client=client)
