"""wait_until: polls a condition until it holds; on timeout says what and the last value."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import pytest

from harness.waiting import WaitTimeout, wait_until

T = TypeVar("T")


def answers(*values: T) -> Callable[[], T]:
    """A condition that returns ``values`` one per call (the last one from then on)."""
    left = list(values)

    def next_value() -> T:
        return left.pop(0) if len(left) > 1 else left[0]

    return next_value


def test_returns_the_first_value_that_holds() -> None:
    assert wait_until(answers(None, 0, "", "here", "later"), timeout=30, interval=0) == "here"


def test_check_decides_and_the_value_is_returned() -> None:
    seen = wait_until(answers(1, 2, 3, 4), check=lambda n: n >= 3, timeout=30, interval=0)
    assert seen == 3


def test_an_interval_may_depend_on_the_value_just_seen() -> None:
    asked: list[int] = []

    def interval(n: int) -> float:
        asked.append(n)
        return 0.0

    assert wait_until(answers(1, 2, 3), check=lambda n: n >= 3, timeout=30, interval=interval) == 3
    assert asked == [1, 2]  # asked after each value that did not hold, with that value


def test_timeout_names_what_and_the_last_value() -> None:
    with pytest.raises(WaitTimeout) as err:
        wait_until(answers({"RUNNING": 2}), check=lambda c: "DONE" in c, timeout=0, what="jobs done")
    assert str(err.value) == "timeout after 0s waiting for jobs done; last seen: {'RUNNING': 2}"
    assert err.value.last == {"RUNNING": 2} and err.value.what == "jobs done"
    assert isinstance(err.value, AssertionError)  # a test waiting in vain fails, not errors


def test_without_what_the_condition_is_named() -> None:
    def server_is_up() -> bool:
        return False

    with pytest.raises(WaitTimeout, match=r"waiting for .*server_is_up; last seen: False"):
        wait_until(server_is_up, timeout=0)


def test_a_long_last_value_is_cut() -> None:
    with pytest.raises(WaitTimeout) as err:
        wait_until(answers(["x" * 10] * 1000), check=lambda v: False, timeout=0)
    message = str(err.value)
    assert len(message) < 1200 and message.endswith("characters)")


def test_an_error_in_the_condition_ends_the_wait_at_once() -> None:
    calls: list[int] = []

    def died() -> bool:
        calls.append(1)
        raise RuntimeError("the process died")

    with pytest.raises(RuntimeError, match="the process died"):
        wait_until(died, timeout=30)
    assert calls == [1]
