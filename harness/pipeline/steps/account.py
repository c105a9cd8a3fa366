"""Step 3: ``tolu register`` and ``tolu login`` a fresh user, as a person would."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from harness.pipeline.context import Run

PASSWORD = "integration-pass-1"


def register_and_login(run: Run) -> str:
    password = PASSWORD + "\n"
    run.tolu(
        "register", "--url", run.url, "-u", run.username, "--password-stdin", "--no-login", stdin=password
    )
    run.tolu("login", "--url", run.url, "-u", run.username, "--password-stdin", stdin=password)
    me = run.client()
    return f"user {run.username} logged in at {me.url}"
