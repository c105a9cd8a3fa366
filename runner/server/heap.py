"""The server process's garbage collector, set for bulk requests.

A bulk request builds tens of thousands of short-lived containers (10,000 parsed
jobs, their rows and answers). With CPython's default thresholds (700, 10, 10) they
set off a collection every 700 allocations, and the full collections that follow
walk every object the process holds — the imported modules, SQLAlchemy's and
pydantic's schemas, about 100,000 objects that live as long as the server.
Measured in-process on 20,000 jobs (docs/performance.md): 25 µs of every created
job's 58 µs of CPU, and 13 µs of a completed job's report, went to the collector.

``settle()``, called once the application is built, moves everything alive then
into the permanent generation (``gc.freeze``: never scanned again) and lets the
youngest generation grow to ``GEN0`` objects before a collection. Cyclic garbage
is still collected, only in fewer, larger passes.

It also caps glibc's malloc arenas (runner/malloc.py): the request threads would each
keep a high-water mark of freed memory of their own.
"""

from __future__ import annotations

import gc
import logging

from runner import malloc

log = logging.getLogger("tolu.server")

#: allocations (minus deallocations) of container objects between two collections of
#: the youngest generation: a few bulk requests' worth.
GEN0 = 50_000


def settle() -> None:
    """Freeze what the process holds now and raise the youngest generation's threshold;
    cap the malloc arenas (runner/malloc.py)."""
    if not malloc.limit_arenas():
        log.debug("malloc arenas left as they are")
    gc.collect()
    gc.freeze()
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(GEN0, gen1, gen2)
