"""Memory settings for the long-lived threaded processes: the server and the coordinator.

**The collector.** Both build tens of thousands of short-lived containers per batch
(the server: 10,000 parsed jobs, their rows and answers; the coordinator: acquired
jobs, their tasks, reports and journal lines). With CPython's default thresholds
(700, 10, 10) they set off a collection every 700 allocations, and the full
collections that follow walk every object the process holds — the imported modules,
SQLAlchemy's and pydantic's schemas, ~100,000 objects that live as long as the
process. Measured in-process on 20,000 jobs (docs/performance.md): 25 µs of every
created job's 58 µs of server CPU, and 13 µs of a completed job's report, went to the
collector. ``settle()`` moves everything alive into the permanent generation
(``gc.freeze``: never scanned again) and lets the youngest generation grow to
``GEN0`` objects before a collection; cyclic garbage is still collected, only in
fewer, larger passes.

**malloc arenas.** glibc gives each thread that meets a busy arena a new one, up to 8
per core, and each arena keeps its own high-water mark of freed memory: a server whose
request threads each parsed a 10,000-job request holds that peak once per thread. Two
arenas kept the server's peak resident memory over a 20,000-job serial run at 169 MiB
instead of 186 (`tolu bench throughput --jobs 20000 --mode serial`); the interpreter
holds the GIL around nearly every allocation anyway, so threads seldom wait for an
arena.

Standard library only (the bottom layer of the import contract).
"""

from __future__ import annotations

import ctypes
import gc
import os

#: glibc malloc arenas a process may use (its ``M_ARENA_MAX``).
ARENAS = 2
_M_ARENA_MAX = -8

#: allocations (minus deallocations) of container objects between two collections of
#: the youngest generation: a few bulk requests' worth.
GEN0 = 50_000


def settle(*, gen0: int = GEN0, arenas: int = ARENAS) -> bool:
    """Call once the process has imported and built what it keeps, before its threads
    start: cap the malloc arenas, freeze what is alive, raise the youngest generation's
    threshold. Answers whether the arena cap took (``limit_arenas``)."""
    capped = limit_arenas(arenas)
    gc.collect()
    gc.freeze()
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(gen0, gen1, gen2)
    return capped


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
