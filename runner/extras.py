"""Optional parts of tolu and the one-line hint when one is not installed.

``pip install tolu`` is the runner; the rest comes as extras declared in pyproject.toml
(``[bench]``, ``[globus]``, ``[container]``, ``[mpich]``, ``[harness]``). Whether an extra
is installed is read from tolu's own metadata (its ``Requires-Dist`` lines for that
extra), so pyproject.toml stays the one list of what each extra needs::

    require_extra("globus", "the globus transfer backend")
    # MissingExtra: the globus transfer backend needs the [globus] extra
    #               (missing: globus-sdk): pip install 'tolu[globus]'

A module that imports an extra's package guards the import with it, at no cost when the
import works::

    try:
        import globus_sdk
    except ImportError:
        require_extra("globus", "the globus transfer backend")
        raise  # the extra is installed: a different problem, keep its error

``tolu`` turns a MissingExtra raised by any command into that one line and exit status 1
(runner/cli/main.py). This module imports nothing of tolu: any floor may use it.
"""

from __future__ import annotations

from importlib import metadata
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from packaging.requirements import Requirement

DISTRIBUTION = "tolu"


class MissingExtra(ImportError):
    """A feature whose extra is not installed; ``str()`` is the one line to show."""

    def __init__(self, feature: str, extra: str, missing: list[str]) -> None:
        self.feature = feature
        self.extra = extra
        self.missing = missing
        detail = f" (missing: {', '.join(missing)})" if missing else ""
        super().__init__(
            f"{feature} needs the [{extra}] extra{detail}: pip install '{DISTRIBUTION}[{extra}]'"
        )


def missing_requirements(extra: str) -> list[str]:
    """The requirements of ``extra`` that are not installed (or at a version it does not allow).

    Empty when tolu itself is not installed (a source tree on ``sys.path``): there is no
    metadata to check against, and the imports will say what is missing.
    """
    from packaging.requirements import Requirement  # 40 ms: only when an extra is checked

    try:
        declared = [Requirement(line) for line in metadata.requires(DISTRIBUTION) or []]
    except metadata.PackageNotFoundError:
        return []
    needed = [r for r in declared if _needs_extra(r, extra)]
    if not needed:
        raise ValueError(f"{DISTRIBUTION} declares no extra named {extra!r}")
    missing: list[str] = []
    for requirement in needed:
        if requirement.name == DISTRIBUTION:  # [all] = tolu[mpich,...]: check those extras
            for part in sorted(requirement.extras):
                missing += [m for m in missing_requirements(part) if m not in missing]
            continue
        try:
            version = metadata.version(requirement.name)
        except metadata.PackageNotFoundError:
            missing.append(requirement.name)
            continue
        if not requirement.specifier.contains(version, prereleases=True):
            missing.append(f"{requirement.name}{requirement.specifier} (have {version})")
    return missing


def require_extra(extra: str, feature: str) -> None:
    """Raise :class:`MissingExtra` unless every requirement of ``extra`` is installed."""
    missing = missing_requirements(extra)
    if missing:
        raise MissingExtra(feature, extra, missing)


def _needs_extra(requirement: Requirement, extra: str) -> bool:
    """True for the requirements that ``extra`` adds (base requirements hold for any extra)."""
    marker = requirement.marker
    return marker is not None and marker.evaluate({"extra": extra}) and not marker.evaluate({"extra": ""})
