"""The suites import their test modules by basename (pytest's default import mode, with
no ``__init__.py``: each folder goes on ``sys.path``), so two test files of one name in
different folders cannot both be collected in one process: whichever is imported second
is an ``import file mismatch`` error, depending on how xdist spreads the files."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

SUITES = Path(__file__).resolve().parents[1]


def test_every_test_module_name_is_used_once() -> None:
    places: dict[str, list[str]] = defaultdict(list)
    for path in SUITES.rglob("*.py"):
        if "node_modules" not in path.parts:
            places[path.stem].append(str(path.relative_to(SUITES)))
    places.pop("conftest", None)
    repeated = {name: sorted(where) for name, where in places.items() if len(where) > 1}
    assert not repeated, f"module names used more than once under suites/ (rename one): {repeated}"
