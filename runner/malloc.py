"""Fewer glibc malloc arenas for the long-lived threaded processes (the server, the coordinator).

glibc gives each thread that meets a busy arena a new one, up to 8 per core, and each
arena keeps its own high-water mark of freed memory: a server whose request threads
each parsed a 10,000-job request holds that peak once per thread. Two arenas kept the
server's peak resident memory over a 20,000-job serial run at 169 MiB instead of 186
(`tolu bench throughput --jobs 20000 --mode serial`); the interpreter holds the GIL
around nearly every allocation anyway, so threads seldom wait for an arena. Standard
library only.
"""

from __future__ import annotations

import ctypes
import os

#: glibc malloc arenas a process may use (its ``M_ARENA_MAX``).
ARENAS = 2
_M_ARENA_MAX = -8


def limit_arenas(arenas: int = ARENAS) -> bool:
    """Cap glibc's malloc arenas; call it before the process starts its threads. False
    where the C library is not glibc, or ``MALLOC_ARENA_MAX`` is set (the user's choice
    wins)."""
    if os.environ.get("MALLOC_ARENA_MAX"):
        return False
    try:
        # the symbols the interpreter already links (libc among them); no ldconfig run
        mallopt = getattr(ctypes.CDLL(None), "mallopt", None)
    except OSError:
        return False
    return bool(mallopt(_M_ARENA_MAX, arenas)) if mallopt is not None else False
