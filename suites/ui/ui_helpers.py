"""Helpers of the web interface suite (imported by its conftest and tests as ``ui_helpers``)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from typing import Any

TOLU = [sys.executable, "-P", "-c", "from runner.cli.main import cli; cli()"]


@dataclass(frozen=True)
class UiUser:
    username: str
    password: str


def login(page: Any, user: UiUser) -> None:
    """Log in through the form, as a person would."""
    page.goto("/ui/")
    page.get_by_test_id("login-username").locator("input").fill(user.username)
    page.get_by_test_id("login-password").locator("input").fill(user.password)
    page.get_by_test_id("login-submit").click()
    page.wait_for_url(re.compile(r".*/ui/sites$"))


def tolu(*args: str) -> str:
    """``tolu ARGS`` as the test's user (``$TOLU_CONFIG``); fails the test on a non-zero exit."""
    done = subprocess.run([*TOLU, *args], capture_output=True, text=True, timeout=120, env=os.environ.copy())
    assert done.returncode == 0, f"tolu {' '.join(args)}: exit {done.returncode}\n{done.stdout}{done.stderr}"
    return done.stdout
