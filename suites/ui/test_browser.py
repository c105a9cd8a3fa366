"""The web interface in Debian's Chromium, against a real server, site agent and
launcher: log in, see the agent alive, create jobs through the form and watch them
finish without a reload, filter, read why a job failed, a batch job's utilization,
the history with a date filter; every view leaves a screenshot in the run's
artifacts (``<run>/screenshots/``)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from playwright.sync_api import expect
from ui_helpers import UiUser, login, tolu

from harness.fixtures_site import SiteHandle
from harness.waiting import wait_until
from runner.client import Client
from runner.models import JobCreate, TransferItemCreate
from runner.states import BatchJobState, JobState

#: failure bound of the waits for the real chain (agent -> local scheduler -> launcher)
LONG_MS = 180_000
#: a message and a tag that would run script if any view rendered them as HTML
XSS_OUTPUT = "<script>window.__xss='output'</script><img src=x onerror=\"window.__xss='img'\">"
XSS_TAG = "<img src=x onerror=\"window.__xss='tag'\">"


def test_login_rejects_a_wrong_password_and_logs_out(page: Any, ui_user: UiUser, shot: Any) -> None:
    page.goto("/ui/jobs")
    expect(page).to_have_url(re.compile(r"/ui/login\?next=/jobs$"))
    shot("login")
    page.get_by_test_id("login-username").locator("input").fill(ui_user.username)
    page.get_by_test_id("login-password").locator("input").fill("not-the-password")
    page.get_by_test_id("login-submit").click()
    expect(page.get_by_test_id("login-error")).to_have_text("Wrong user name or password.")
    page.get_by_test_id("login-password").locator("input").fill(ui_user.password)
    page.get_by_test_id("login-submit").click()
    expect(page).to_have_url(re.compile(r"/ui/jobs$"))  # back where the link pointed
    expect(page.get_by_test_id("live-status")).to_have_attribute("data-status", "live")
    page.get_by_test_id("user-menu").click()
    expect(page.get_by_text(f"Logged in as {ui_user.username}")).to_be_visible()
    page.get_by_test_id("logout").click()
    expect(page).to_have_url(re.compile(r"/ui/login"))
    page.goto("/ui/sites")
    expect(page).to_have_url(re.compile(r"/ui/login\?next=/sites$"))


def _pick(page: Any, testid: str, option: str) -> None:
    """Choose ``option`` in the Vuetify select ``testid``."""
    page.get_by_test_id(testid).click()
    page.get_by_role("option", name=option, exact=True).click()
    page.keyboard.press("Escape")


def test_a_live_run_seen_through_the_browser(
    page: Any,
    shot: Any,
    ui_user: UiUser,
    tolu_client: Client,
    site_agent: SiteHandle,
    tmp_path: Path,
) -> None:
    site = site_agent
    login(page, ui_user)

    # the site card: the agent started by `tolu site start` heartbeats
    card = page.get_by_test_id(f"site-card-{site.id}")
    expect(card.get_by_test_id("agent-status")).to_have_attribute("data-alive", "true", timeout=LONG_MS)

    # apps: list and detail
    page.get_by_test_id("nav-apps").click()
    expect(page.get_by_test_id("apps-table")).to_contain_text("hello")
    shot("apps")
    page.get_by_role("link", name="hello", exact=True).click()
    expect(page.get_by_test_id("app-parameters")).to_contain_text("times")
    shot("app")

    # create 10 jobs through the form
    page.get_by_test_id("app-create-jobs").click()
    expect(page.get_by_test_id("param-name").locator("input")).to_have_value("world")
    page.evaluate("window.__sameDocument = 'yes'")  # gone if the page ever reloads
    page.get_by_test_id("param-name").locator("input").fill("ui")
    page.get_by_test_id("create-count").locator("input").fill("10")
    page.get_by_test_id("create-tags").locator("textarea").first.fill("run=ui")
    shot("create-jobs")
    page.get_by_test_id("create-submit").click()
    expect(page.get_by_test_id("create-result")).to_contain_text("Created 10 job(s)")
    created = tolu_client.jobs.filter(site_id=site.id, tags={"run": "ui"})
    assert len(created) == 10 and {j.parameters["name"] for j in created} == {"ui"}

    # the table, before anything runs: 10 jobs waiting for a launcher
    page.get_by_test_id("created-link").click()
    table = page.get_by_test_id("jobs-table")
    expect(table.locator("[data-state=PREPROCESSED]")).to_have_count(10)  # nothing else yet

    # a job that fails (output and tag that must stay text), and two with stage-in items
    (tmp_path / "input.txt").write_text("payload\n")
    fail_app, hello_app = site.apps["fail"], site.apps["hello"]
    (failed,) = tolu_client.jobs.bulk_create(
        [
            JobCreate(
                app_id=fail_app.id,
                parameters={"msg": XSS_OUTPUT},
                tags={"run": "ui-fail", "note": XSS_TAG},
                retry_limit=0,
            )
        ]
    )
    staged = tolu_client.jobs.bulk_create(
        [
            JobCreate(
                app_id=hello_app.id,
                tags={"run": "ui-transfer"},
                transfers=[
                    TransferItemCreate(direction="in", source=f"local:{src}", destination="input.txt")
                ],
            )
            for src in (tmp_path / "input.txt", tmp_path / "missing.txt")
        ]
    )

    # an allocation, through the agent's scheduler service and the local scheduler
    tolu("queue", "submit", "-n", "1", "-t", "10", "--mode", "serial", "--site", str(site.path))

    # the rows change state while the page stays where it is
    # (the table may show more rows: jobs of the same app created after these)
    for job in created:
        row = table.get_by_test_id(f"job-link-{job.id}").locator("xpath=ancestor::tr")
        expect(row.locator("[data-state=JOB_FINISHED]")).to_be_visible(timeout=LONG_MS)
    assert page.evaluate("window.__sameDocument") == "yes", "the page reloaded"
    shot("jobs")

    # filter the table: the failed job by its tag and state
    page.get_by_test_id("filter-clear").click()
    expect(page).to_have_url(re.compile(r"/ui/jobs$"))
    page.get_by_test_id("filter-tags").locator("input").fill("run=ui-fail")
    expect(page.get_by_test_id("jobs-count")).to_have_text("1 matching")
    _pick(page, "filter-state", "FAILED")
    expect(table.locator(f"[data-testid=job-link-{failed.id}]")).to_be_visible(timeout=LONG_MS)
    expect(page).to_have_url(re.compile(r"state=FAILED"))
    expect(page.get_by_test_id("jobs-count")).to_have_text("1 matching")

    # open it and read why it failed
    table.get_by_test_id(f"job-link-{failed.id}").click()
    expect(page.get_by_test_id("failure-reason")).to_contain_text("retry limit 0 reached")
    expect(page.get_by_test_id("failure-reason")).to_contain_text("exited with code 3")
    expect(page.get_by_test_id("output-tail")).to_contain_text(XSS_OUTPUT)
    expect(page.get_by_test_id("job-tags")).to_contain_text(XSS_TAG)
    assert page.evaluate("window.__xss") is None, "job output or a tag ran as script"
    shot("job-failed")

    # the allocation and its utilization plot
    (batch,) = tolu_client.batch_jobs.filter(site_id=site.id)
    wait_until(
        lambda: tolu_client.batch_jobs.get(batch.id).start_time,
        timeout=120,
        what="the batch job's start time",
    )
    page.get_by_test_id("nav-batch-jobs").click()
    page.get_by_test_id(f"batch-job-link-{batch.id}").click()
    chart = page.get_by_test_id("utilization-chart")
    expect(chart.locator("canvas")).to_be_visible()
    assert int(chart.get_attribute("data-points") or 0) > 0
    expect(page.get_by_test_id("peak-busy-nodes")).not_to_have_text("0.00")
    shot("batch-job")
    page.get_by_test_id("nav-batch-jobs").click()
    expect(page.get_by_test_id("batch-jobs-table")).to_contain_text("serial")
    shot("batch-jobs")

    # stage-in items: one done, one in error
    wait_until(
        lambda: {t.state.value for t in tolu_client.transfers.filter(job_id=[j.id for j in staged])},
        check=lambda states: states == {"done", "error"},
        timeout=120,
        what="the stage-in items to end done and in error",
    )
    page.get_by_test_id("nav-transfers").click()
    expect(page.get_by_test_id("transfers-table")).to_contain_text("missing.txt")
    expect(page.get_by_test_id("transfers-table").locator("[data-state=error]")).to_have_count(1)
    shot("transfers")

    # history with a date filter: today's finished jobs
    page.get_by_test_id("nav-history").click()
    now = datetime.now(UTC)
    page.get_by_test_id("history-after").locator("input").fill(f"{now - timedelta(hours=1):%Y-%m-%dT%H:%M}")
    page.get_by_test_id("history-before").locator("input").fill(
        f"{now + timedelta(minutes=5):%Y-%m-%dT%H:%M}"
    )
    expect(page).to_have_url(re.compile(r"after=.*before="))
    finished = tolu_client.jobs.count(site_id=site.id, state=JobState.JOB_FINISHED)
    expect(page.get_by_test_id("history-finished")).to_have_text(str(finished), timeout=LONG_MS)
    assert finished >= 10
    failed_n = tolu_client.jobs.count(site_id=site.id, state=JobState.FAILED)  # the run and the missing file
    expect(page.get_by_test_id("history-failed")).to_have_text(str(failed_n))
    shot("history")

    # the cards once more, now with jobs, an allocation and busy or free nodes
    page.get_by_test_id("nav-sites").click()
    expect(card.get_by_test_id("site-jobs-total")).to_have_text(str(tolu_client.jobs.count(site_id=site.id)))
    expect(card.get_by_test_id("site-batch-jobs")).to_contain_text("1 running")
    shot("sites")

    # give the allocation back: the agent's scheduler service cancels it
    tolu_client.batch_jobs.delete(batch.id)
    wait_until(
        lambda: tolu_client.batch_jobs.get(batch.id).state,
        check=lambda state: state in (BatchJobState.FINISHED, BatchJobState.FAILED),
        timeout=120,
        what="the batch job to end after its deletion",
    )
