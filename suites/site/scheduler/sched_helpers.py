"""Helpers for the scheduler suite (imported by its tests): drive services against the real server."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

import pytest

from harness.fixtures_site import SiteHandle
from runner.client import Client
from runner.site.service import Service, SiteContext
from runner.site.settings import load


def drive(services: Iterable[Service], until: Callable[[], bool], *, timeout: float = 60.0,
          pause: float = 0.3, what: str = "condition", each: Callable[[], None] | None = None,
          fail: bool = True) -> bool:
    """Call every service's ``run_once`` in turn until ``until()`` holds (True).

    After ``timeout`` the test fails (``fail=False``: returns False). ``each`` runs after
    every round (to check an invariant while things move).
    """
    services = list(services)
    deadline = time.monotonic() + timeout
    while True:
        for service in services:
            service.run_once()
        if each is not None:
            each()
        if until():
            return True
        if time.monotonic() > deadline:
            if not fail:
                return False
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}", pytrace=False)
        time.sleep(pause)


def context(site: SiteHandle, client: Client) -> SiteContext:
    """The SiteContext an agent would build for ``site`` (settings read back from its file)."""
    return SiteContext(site_dir=site.path, settings=load(site.path), client=client)
