"""``--quiet-wait``: wait for a quiet machine before the first trial.

A benchmark's rates sink when something else uses the cores, and on some disks for
minutes after a large deletion, such as an earlier run's clean-up (ext4 without a
journal: harness/bench/filesystem.py). Neither shows in a ratio's own noise. So a run
can first wait: ``settle_s`` seconds whatever happens, then until the 1-minute load
average is under ``load_below``, for at most ``most_s`` seconds more. What the wait came
to goes in the run's notes, and every trial records its own starting load
(``load_1min_at_start``).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass

#: how often the load is read while waiting for it to fall
POLL_S = 5.0


@dataclass(frozen=True)
class QuietWait:
    #: seconds to wait before the load is even looked at
    settle_s: float
    #: the 1-minute load average to wait for
    load_below: float = 1.0
    #: the longest wait for the load after ``settle_s``; then the run starts anyway
    most_s: float = 600.0


def load_1min() -> float | None:
    """The 1-minute load average now; None where the system keeps none."""
    try:
        return os.getloadavg()[0]
    except OSError:
        return None


def wait(
    quiet: QuietWait,
    *,
    say: Callable[[str], None] = print,
    load: Callable[[], float | None] = load_1min,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> str:
    """Wait as ``quiet`` says; the note for the run (how long, and the load it ended at)."""
    started = clock()
    say(
        f"waiting {quiet.settle_s:g} s, then for a 1-minute load under {quiet.load_below:g}, "
        "before the first trial (--quiet-wait)"
    )
    sleep(quiet.settle_s)
    deadline = clock() + quiet.most_s
    now = load()
    while now is not None and now >= quiet.load_below and clock() < deadline:
        sleep(min(POLL_S, max(0.0, deadline - clock())))
        now = load()
    waited = clock() - started
    if now is None:
        note = f"waited {waited:.0f} s before the first trial (--quiet-wait); this system has no load average"
    elif now < quiet.load_below:
        note = (
            f"waited {waited:.0f} s for a quiet machine (--quiet-wait): 1-minute load {now:.2f} "
            "at the first trial"
        )
    else:
        note = (
            f"the machine did not become quiet in {waited:.0f} s (--quiet-wait): 1-minute load {now:.2f} "
            f"at the first trial, not under {quiet.load_below:g}; its rates are noisier than a quiet run's"
        )
    say(note)
    return note
