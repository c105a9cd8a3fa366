"""Helpers for the scheduler suite (imported by its tests): drive services against the real server."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from harness.fixtures_site import SiteHandle
from harness.waiting import wait_until
from runner.client import Client
from runner.site.service import Service, SiteContext
from runner.site.settings import load


def drive(services: Iterable[Service], until: Callable[[], bool], *, timeout: float = 60.0,
          pause: float = 0.3, what: str = "condition", each: Callable[[], None] | None = None) -> None:
    """Call every service's ``run_once`` in turn until ``until()`` holds (True).

    After ``timeout`` the test fails. ``each`` runs after every round (to check an
    invariant while things move).
    """
    services = list(services)

    def one_round() -> bool:
        for service in services:
            service.run_once()
        if each is not None:
            each()
        return until()

    wait_until(one_round, timeout=timeout, interval=pause, what=what)


def context(site: SiteHandle, client: Client) -> SiteContext:
    """The SiteContext an agent would build for ``site`` (settings read back from its file)."""
    return SiteContext(site_dir=site.path, settings=load(site.path), client=client)
