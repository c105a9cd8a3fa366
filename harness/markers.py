"""Area markers and the folder rule that applies them.

A test's folder under ``suites/`` says which areas it belongs to, so ``pytest -m site``
and ``pytest suites/site`` select the same tests. Every folder level that is an
area name adds that marker: ``suites/site/transfer/test_x.py`` is ``site`` and
``transfer``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import PurePath

#: area marker -> usage text shown by ``pytest --markers``.
AREAS: dict[str, str] = {
    "server": "REST server: routes, auth, database, migrations (suites/server).",
    "api": "Python client against a real server (suites/api).",
    "platform": "platform interfaces: nodes, app launchers, packing (suites/platform).",
    "site": "site directory, agent and its services (suites/site).",
    "processing": "site processing service: hooks, state advancement (suites/site/processing).",
    "transfer": "stage-in/stage-out transfers (suites/site/transfer).",
    "scheduler": "batch schedulers, queue maintainer, autoscaler (suites/site/scheduler).",
    "launcher_mpi": "launcher in MPI mode: one mpiexec per job (suites/site/launcher_mpi).",
    "launcher_serial": "launcher in serial mode: mpi4py workers (suites/site/launcher_serial).",
    "integration": "end-to-end runs of the whole system (suites/integration).",
    "benchmark": "throughput and utilization measurements (suites/benchmark).",
    "harness": "tests of the test harness itself (suites/harness).",
    "ui": "the web interface in a real browser (Chromium through Playwright) and its API (suites/ui).",
}

#: markers that are not areas: name -> "signature: usage" for ``pytest --markers``.
OTHER_MARKERS: dict[str, str] = {
    "location": (
        "location(name, ...): run only at the named locations (see --location, "
        "harness/locations.yaml); elsewhere skipped with the reason."
    ),
    "requires": (
        "requires(feature, ...): run only where every feature is present (docker, slurm, "
        "postgres, gpu, mpi, pbs or a feature a location declares); elsewhere skipped with "
        "the reason, or failed when the feature is in --require."
    ),
    "databases": (
        "databases(name, ...): a test that runs on these databases only (sqlite, postgresql), "
        "in any folder; with --database, on those of them it names (none: skipped)."
    ),
    "expect_errors": (
        "expect_errors(pattern, ...): regular expressions of ERROR log lines this test "
        "provokes on purpose; other ERROR lines in its collected logs flag the run."
    ),
}

#: the default name of the directory whose sub-folders map to areas.
SUITES_DIR = "suites"


def folder_areas(path: PurePath, root: PurePath, suites_dir: str = SUITES_DIR) -> tuple[str, ...]:
    """The area markers that ``path`` gets from its folders under ``root/suites_dir``.

    Pure: looks at the path's parts only. A path outside the suites folder gets none.
    """
    try:
        rel = PurePath(path).relative_to(PurePath(root) / suites_dir)
    except ValueError:
        return ()
    folders: Sequence[str] = rel.parts[:-1] if rel.suffix else rel.parts
    return tuple(dict.fromkeys(part for part in folders if part in AREAS))
