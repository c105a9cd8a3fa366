"""runner/heap.py: the arena cap and the collector settings hold in a real process; MALLOC_ARENA_MAX wins."""

from __future__ import annotations

import json
import os
import subprocess
import sys


def _arenas_after(env: dict[str, str]) -> tuple[str, int]:
    script = (
        "import threading, re, ctypes, os, tempfile\n"
        "from runner import heap\n"
        "print(heap.limit_arenas())\n"
        "def churn():\n"
        "    for _ in range(2000):\n"
        "        bytearray(256 * 1024)\n"
        "threads = [threading.Thread(target=churn) for _ in range(8)]\n"
        "[t.start() for t in threads]\n"
        "[t.join() for t in threads]\n"
        "libc = ctypes.CDLL(None)\n"
        "libc.fopen.restype = ctypes.c_void_p\n"
        "libc.fopen.argtypes = [ctypes.c_char_p, ctypes.c_char_p]\n"
        "libc.malloc_info.argtypes = [ctypes.c_int, ctypes.c_void_p]\n"
        "libc.fclose.argtypes = [ctypes.c_void_p]\n"
        "path = tempfile.mktemp()\n"
        "fp = libc.fopen(path.encode(), b'w')\n"
        "libc.malloc_info(0, fp)\n"
        "libc.fclose(fp)\n"
        "print(len(re.findall(r'<heap nr=', open(path).read())))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, check=True, timeout=120
    )
    capped, arenas = done.stdout.split()
    return capped, int(arenas)


def test_the_cap_keeps_a_threaded_process_to_two_arenas() -> None:
    env = {k: v for k, v in os.environ.items() if k != "MALLOC_ARENA_MAX"}
    capped, arenas = _arenas_after(env)
    assert capped == "True" and arenas <= 2


def test_the_users_malloc_arena_max_wins() -> None:
    capped, arenas = _arenas_after({**os.environ, "MALLOC_ARENA_MAX": "4"})
    assert capped == "False" and arenas <= 4


def test_settle_freezes_what_is_alive_and_collects_in_larger_passes() -> None:
    script = (
        "import gc, json\n"
        "from runner import heap\n"
        "before = gc.get_threshold()[0]\n"
        "capped = heap.settle(gen0=12345)\n"
        "print(json.dumps([capped, before, gc.get_threshold()[0], gc.get_freeze_count()]))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "MALLOC_ARENA_MAX"}
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, check=True, timeout=120
    )
    capped, before, after, frozen = json.loads(done.stdout)
    assert capped is True and before == 700 and after == 12345
    assert frozen > 1_000, "the imported modules' objects are in the permanent generation"
