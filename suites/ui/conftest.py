"""Fixtures of the web interface suite: Debian's Chromium driven by Playwright, a user
whose password the browser types, screenshots into the run's artifacts.

The browser is the system one (``/usr/bin/chromium``, or ``$TOLU_CHROMIUM``), started
by Playwright's driver from PyPI: nothing is downloaded. Without it the tests are
skipped with the reason (failed under ``--require chromium``, as in CI).
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from ui_helpers import UiUser, tolu

from harness.evidence import Evidence
from harness.fixtures_server import ServerHandle
from harness.fixtures_site import SiteHandle
from harness.probes import chromium_path
from harness.run import run_state
from runner.client import Client

#: ``TOLU_UI_DOCS=1``: also copy every screenshot into docs/ui/ (how docs/ui.md's pictures are made).
DOCS_DIR = Path(__file__).resolve().parents[2] / "docs" / "ui"
VIEWPORT = {"width": 1440, "height": 900}


@pytest.fixture
def ui_user(tolu_server: ServerHandle) -> UiUser:
    """A registered user whose password the test knows (to type it into the login form)."""
    user = UiUser(f"ui-{uuid.uuid4().hex[:10]}", secrets.token_urlsafe(14))
    Client.register(tolu_server.url, user.username, user.password)
    return user


@pytest.fixture
def tolu_client(
    ui_user: UiUser,
    tolu_server: ServerHandle,
    tolu_evidence: Evidence,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Client:
    """The harness's ``tolu_client``, as ``ui_user``: the browser and the API are one user."""
    client = Client.login(tolu_server.url, ui_user.username, ui_user.password)
    monkeypatch.setenv("TOLU_CONFIG", str(client.save_config(tmp_path / "tolu-credentials.yaml")))
    tolu_evidence.add_client(client)
    return client


@pytest.fixture(scope="session")
def browser(request: pytest.FixtureRequest) -> Iterator[Any]:
    run_state(request.config).need("chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=chromium_path(), headless=True)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser: Any, tolu_server: ServerHandle, request: pytest.FixtureRequest) -> Iterator[Any]:
    """A fresh browser tab (its own storage) on the test server; what the page printed to
    its console is kept with the test's evidence, and a failing test leaves a screenshot."""
    context = browser.new_context(
        base_url=tolu_server.url, viewport=VIEWPORT, locale="en-US", timezone_id="UTC"
    )
    context.set_default_timeout(30_000)
    tab = context.new_page()
    console: list[str] = []
    tab.on("console", lambda msg: console.append(f"{msg.type}: {msg.text}"))
    tab.on("pageerror", lambda exc: console.append(f"pageerror: {exc}"))
    try:
        yield tab
    finally:
        failed = getattr(request.node, "rep_call_failed", False)
        out = _shot_dir(request.config)
        if console:
            (out / f"{_slug(request.node.name)}-console.log").write_text("\n".join(console) + "\n")
        if failed:
            tab.screenshot(path=str(out / f"FAILED-{_slug(request.node.name)}.png"), full_page=True)
        context.close()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    if report.when == "call" and report.failed:
        item.rep_call_failed = True  # type: ignore[attr-defined]


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-")


def _shot_dir(config: pytest.Config) -> Path:
    out = run_state(config).run_dir / "screenshots"
    out.mkdir(parents=True, exist_ok=True)
    return out


@pytest.fixture
def shot(request: pytest.FixtureRequest, page: Any) -> Any:
    """``shot("jobs")``: a screenshot of the page into ``<run>/screenshots/jobs.png`` (and
    docs/ui/ with ``TOLU_UI_DOCS=1``); returns the path."""

    def take(name: str) -> Path:
        page.wait_for_load_state("networkidle")
        path = _shot_dir(request.config) / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        if os.environ.get("TOLU_UI_DOCS") == "1":
            DOCS_DIR.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, DOCS_DIR / f"{name}.png")
        return path

    return take


@pytest.fixture
def site_agent(request: pytest.FixtureRequest, tolu_site: SiteHandle) -> Iterator[SiteHandle]:
    """``tolu site start`` on ``tolu_site`` with the processing, transfer and scheduler
    services (allocations only when the test asks for one: no queue maintainer);
    stopped with ``tolu site stop`` (and by PID if the run is interrupted)."""
    from runner.site import directory

    tolu_site.write_settings(
        services=["processing", "transfer", "scheduler"],
        scheduler={"poll_interval_sec": 0.5},
        # one item per task: a missing file fails its own item, not its neighbours
        transfer={
            "retry_limit": 0,
            "retry_backoff_sec": 0.2,
            "poll_interval_sec": 0.5,
            "max_items_per_task": 1,
        },
        launcher={"idle_timeout_sec": 600},
    )
    settings = yaml.safe_load((tolu_site.path / "settings.yml").read_text())
    assert settings["services"] == ["processing", "transfer", "scheduler"]
    tolu("site", "start", str(tolu_site.path))
    pid = directory.running_pid(tolu_site.path)
    assert pid is not None, "tolu site start left no running agent"
    state = run_state(request.config)
    daemon = state.track("tolu site agent (ui)", pid, lambda: tolu("site", "stop", str(tolu_site.path)))
    try:
        yield tolu_site
    finally:
        try:
            tolu("site", "stop", str(tolu_site.path))
        finally:
            state.untrack(daemon)
