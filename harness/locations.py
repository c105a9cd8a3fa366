"""Locations: the places the suites run (a laptop, a CI runner, a cluster).

A location says what is expected there (scheduler, MPI launcher, node shape,
features) and which site settings to use. Which location we are at is *named*
(``--location``) or *detected* from the hostname, the environment and the probes;
what is really present is what the probes saw. Loading validates (pydantic), so a
typo in a user's locations file is a clear usage error at start-up.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from harness.probes import PROBES, Probe

DEFAULTS_RESOURCE = "locations.yaml"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class NodeShape(_Strict):
    cpus: int = Field(default=0, ge=0)
    gpus: int = Field(default=0, ge=0)


class Detect(_Strict):
    """Extra conditions for detection, all of which must hold."""

    #: environment variables that must be set (and not "", "0", "false").
    env: list[str] = Field(default_factory=list)
    #: features the probes must find present.
    features: list[str] = Field(default_factory=list)


class Location(_Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    description: str = ""
    #: regular expressions matched (``re.match``) against the hostname.
    hostnames: list[str] = Field(default_factory=list)
    detect: Detect = Field(default_factory=Detect)
    #: the location used when no other one is detected.
    default: bool = False
    scheduler: str = "local"
    mpi_launcher: str = "mpich"
    node: NodeShape = Field(default_factory=NodeShape)
    #: what this location is expected to have (docker, slurm, postgres, gpu, mpi, ...).
    features: list[str] = Field(default_factory=list)
    #: overrides merged into the SiteSettings of sites made here (runner/site/settings.py).
    site_settings: dict[str, Any] = Field(default_factory=dict)

    @field_validator("hostnames")
    @classmethod
    def _patterns_compile(cls, value: list[str]) -> list[str]:
        for pattern in value:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"hostname pattern {pattern!r}: {exc}") from None
        return value

    @property
    def detectable(self) -> bool:
        return bool(self.hostnames or self.detect.env or self.detect.features)


class LocationsError(ValueError):
    """A locations file that cannot be used; the message names the file and the entry."""


@dataclass(frozen=True)
class Registry:
    """Locations in lookup order: user files first (in the order given), then the defaults."""

    locations: tuple[Location, ...]
    sources: tuple[str, ...] = ()

    def get(self, name: str) -> Location:
        for location in self.locations:
            if location.name == name:
                return location
        known = ", ".join(sorted({loc.name for loc in self.locations})) or "none"
        raise LocationsError(f"unknown location {name!r} (known: {known}; add one with --locations FILE)")

    def known_features(self) -> frozenset[str]:
        declared = {f for loc in self.locations for f in [*loc.features, *loc.detect.features]}
        return frozenset(declared | set(PROBES))


def parse(text: str, source: str) -> tuple[Location, ...]:
    """Parse one locations YAML document: ``{locations: [ {...}, ... ]}``."""
    try:
        raw: Any = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise LocationsError(f"{source}: not valid YAML: {exc}") from None
    entries = raw.get("locations") if isinstance(raw, dict) else None
    if not isinstance(entries, list):
        raise LocationsError(f"{source}: expected a mapping with a 'locations' list")
    out: list[Location] = []
    for index, entry in enumerate(entries):
        label = entry.get("name", index) if isinstance(entry, dict) else index
        try:
            out.append(Location.model_validate(entry))
        except ValidationError as exc:
            first = exc.errors()[0]
            key = ".".join(str(p) for p in first["loc"]) or "(entry)"
            raise LocationsError(f"{source}: location {label!r}: {key}: {first['msg']}") from None
    names = [loc.name for loc in out]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise LocationsError(f"{source}: location {dupes[0]!r} defined twice")
    return tuple(out)


def load(user_files: Sequence[str | Path] = (), *, with_defaults: bool = True) -> Registry:
    """The registry: the user's files (first wins on a name clash) and the shipped defaults."""
    locations: list[Location] = []
    sources: list[str] = []
    for path in user_files:
        try:
            text = Path(path).read_text()
        except OSError as exc:
            raise LocationsError(f"{path}: cannot read locations file: {exc.strerror}") from None
        locations.extend(parse(text, str(path)))
        sources.append(str(path))
    if with_defaults:
        text = (Path(__file__).parent / DEFAULTS_RESOURCE).read_text()
        locations.extend(parse(text, f"harness/{DEFAULTS_RESOURCE}"))
        sources.append(f"harness/{DEFAULTS_RESOURCE} (shipped defaults)")
    by_name: dict[str, Location] = {}
    for loc in locations:
        by_name.setdefault(loc.name, loc)
    unique = list(by_name.values())
    return Registry(tuple(unique), tuple(sources))


@dataclass(frozen=True)
class Detection:
    """Where we are, why we think so, and which features are really present."""

    location: Location
    reason: str
    probes: tuple[Probe, ...] = ()
    #: features available to tests: probed present, plus declared ones that no probe denies.
    features: frozenset[str] = field(default_factory=frozenset)

    def absent_reason(self, feature: str) -> str:
        """Why ``feature`` is not available here (for skip and failure messages)."""
        for probe in self.probes:
            if probe.feature == feature:
                return f"{feature}: {probe.detail}"
        return f"{feature}: not a feature of location {self.location.name!r} and no probe for it"

    def to_json(self) -> dict[str, Any]:
        return {
            "location": self.location.model_dump(mode="json"),
            "reason": self.reason,
            "probes": [{"feature": p.feature, "present": p.present, "detail": p.detail} for p in self.probes],
            "features": sorted(self.features),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Detection:
        return cls(
            location=Location.model_validate(data["location"]),
            reason=data["reason"],
            probes=tuple(Probe(**p) for p in data["probes"]),
            features=frozenset(data["features"]),
        )


def _env_set(env: Mapping[str, str], name: str) -> bool:
    return env.get(name, "").strip().lower() not in ("", "0", "false", "no")


def _matches(location: Location, hostname: str, env: Mapping[str, str], present: set[str]) -> str | None:
    """Why ``location`` matches (None when it does not)."""
    if not location.detectable:
        return None
    why: list[str] = []
    if location.hostnames:
        pattern = next((p for p in location.hostnames if re.match(p, hostname)), None)
        if pattern is None:
            return None
        why.append(f"hostname {hostname!r} matches {pattern!r}")
    if not all(_env_set(env, name) for name in location.detect.env):
        return None
    why.extend(f"${name} is set" for name in location.detect.env)
    if not set(location.detect.features) <= present:
        return None
    why.extend(f"{feature} probed present" for feature in location.detect.features)
    return ", ".join(why)


def available_features(location: Location, probes: Iterable[Probe]) -> frozenset[str]:
    """Probed-present features plus the location's declared ones that no probe found absent."""
    probes = tuple(probes)
    absent = {p.feature for p in probes if not p.present}
    present = {p.feature for p in probes if p.present}
    return frozenset(present | (set(location.features) - absent))


def detect(
    registry: Registry,
    *,
    hostname: str,
    probes: Sequence[Probe] = (),
    env: Mapping[str, str] | None = None,
    named: str | None = None,
    named_by: str = "--location",
) -> Detection:
    """Pure: choose the location. Named > first detectable match (registry order) > default."""
    env = os.environ if env is None else env
    present = {p.feature for p in probes if p.present}
    if named:
        location = registry.get(named)
        reason = f"named with {named_by}"
    else:
        match = next(
            ((loc, why) for loc in registry.locations if (why := _matches(loc, hostname, env, present))),
            None,
        )
        if match is not None:
            location, why = match
            reason = f"detected: {why}"
        else:
            default = next((loc for loc in registry.locations if loc.default), None)
            if default is None:
                raise LocationsError(
                    f"no location matches hostname {hostname!r} and none is marked default: true; "
                    "name one with --location"
                )
            location = default
            reason = f"default: no location matches hostname {hostname!r}"
    return Detection(location, reason, tuple(probes), available_features(location, probes))
