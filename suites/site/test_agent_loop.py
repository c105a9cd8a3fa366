"""The agent loop in-process: periods, one traceback per distinct error, one warning
per outage, services closed on stop. The services here are test services registered
through the real registry; the agent around them is the real one."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import pytest

from harness.waiting import wait_until
from runner.client import Client
from runner.client.errors import TransportError
from runner.registry import DuplicateName, UnknownName
from runner.site.agent import Agent, ServerHealth, _is_power_of_ten, enabled_services
from runner.site.service import (
    Service,
    SiteContext,
    get_service,
    register_service,
)
from runner.site.settings import SiteSettings


@register_service("test_same_error")
class SameError(Service):
    period_sec = 0.005

    def __init__(self, ctx: SiteContext) -> None:
        super().__init__(ctx)
        self.calls = 0
        self.closed = False

    def run_once(self) -> None:
        self.calls += 1
        raise ValueError("the same problem every time")

    def close(self) -> None:
        self.closed = True


@register_service("test_outage")
class Outage(Service):
    """Fails as if the server were down for its first 4 rounds, then works."""

    period_sec = 0.01

    def __init__(self, ctx: SiteContext) -> None:
        super().__init__(ctx)
        self.calls = 0
        self.ok = threading.Event()

    def run_once(self) -> None:
        self.calls += 1
        if self.calls <= 4:
            raise TransportError("cannot reach the tolu server at http://x: connection refused")
        self.ok.set()


@pytest.fixture
def ctx(tmp_path: Path) -> SiteContext:
    settings = SiteSettings(site_id=1, name="t", server_url="http://127.0.0.1:9")
    return SiteContext(
        site_dir=tmp_path, settings=settings, client=Client("http://127.0.0.1:9", "t", retries=0)
    )


def test_same_error_logs_one_traceback_then_counts(
    ctx: SiteContext, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    agent = Agent(ctx, services=["test_same_error"])
    agent.start()
    service = agent.threads[0].service
    assert isinstance(service, SameError)
    wait_until(lambda: service.calls >= 120, timeout=30, interval=0.01, what="120 rounds of the service")
    agent.stop()
    assert service.closed
    errors = [r for r in caplog.records if r.name == "tolu.site.test_same_error"]
    tracebacks = [r for r in errors if "Traceback" in r.getMessage()]
    assert len(tracebacks) == 1
    assert "ValueError: the same problem every time" in tracebacks[0].getMessage()
    repeats = [r.getMessage() for r in errors if "again" in r.getMessage()]
    assert repeats[:2] == [
        "test_same_error failed again (10 times so far): ValueError: the same problem every time",
        "test_same_error failed again (100 times so far): ValueError: the same problem every time",
    ]


def test_outage_is_one_warning_and_one_recovery_line(
    ctx: SiteContext, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    agent = Agent(ctx, services=["test_outage", "test_outage"])  # two services see the outage
    agent.start()
    service = agent.threads[0].service
    assert isinstance(service, Outage)
    assert service.ok.wait(30), "backoff never let the service try again"
    agent.stop()
    messages = [r.getMessage() for r in caplog.records if r.name == "tolu.site.agent"]
    assert sum("unreachable" in m for m in messages) == 1
    assert sum("reachable again" in m for m in messages) == 1
    assert not any("Traceback" in r.getMessage() for r in caplog.records)


def test_server_health_is_shared() -> None:
    health = ServerHealth("http://x")
    before = time.monotonic()
    for service in ("a", "b", "c"):
        health.failed(service, TransportError("down"))
    assert health.outages == 1
    health.ok(time.monotonic())
    health.failed("a", TransportError("down again"))
    assert health.outages == 2
    # a round that began before the outage was noticed does not end it
    health.ok(before)
    assert health.down_since is not None
    health.failed("b", TransportError("still down"))
    assert health.outages == 2


def test_a_long_outage_says_so_at_10_100_1000_tries(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="tolu.site.agent")
    health = ServerHealth("http://x")
    for _ in range(1000):
        health.failed("a", TransportError("down"))
    health.ok(time.monotonic())
    for _ in range(9):  # a new outage counts from 1 again
        health.failed("a", TransportError("down again"))
    messages = [r.getMessage() for r in caplog.records if r.name == "tolu.site.agent"]
    assert sum("unreachable" in m for m in messages) == 2
    assert [m for m in messages if "no answer" in m] == [
        f"server http://x: no answer to {n} tries; services keep retrying" for n in (10, 100, 1000)
    ]


def test_registry_errors_are_clear() -> None:
    with pytest.raises(UnknownName, match="unknown service 'nope'"):
        get_service("nope")
    with pytest.raises(DuplicateName, match="registered twice"):

        @register_service("test_same_error")
        class Other(Service):
            def run_once(self) -> None:
                pass


def test_enabled_services_follow_settings() -> None:
    settings = SiteSettings(services=["processing", "transfer", "processing"])
    assert enabled_services(settings) == ["heartbeat", "processing", "transfer"]


def test_powers_of_ten() -> None:
    assert [n for n in range(1, 2000) if _is_power_of_ten(n)] == [1, 10, 100, 1000]
