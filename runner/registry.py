"""``Registry[T]``: things registered by name, with the same rules everywhere.

Schedulers, app launchers, node discovery sources, transfer backends, site services
and autoscaler policies are each one registry::

    SCHEDULERS: Registry[type[BatchScheduler]] = Registry("scheduler", modules={"slurm": "..."})

    @SCHEDULERS.register("slurm")
    class Slurm(BatchScheduler): ...

    SCHEDULERS.get("slurm")   # -> type[BatchScheduler]

The rules (ReFrame's, not PSI/J's silent aliases):

- a name registered twice is an error (:class:`DuplicateName`), even for the same object;
- looking up a name nobody registered is an error that lists the known names
  (:class:`UnknownName`);
- ``modules`` maps a name to the module that registers it, imported on the first
  lookup of that name (a backend whose library is optional costs nothing until used);
  an ``ImportError`` from that module propagates as it is, naming what is missing;
- registering a class sets its ``name`` attribute to the registered name;
- ``check`` (optional) sees each ``(name, obj)`` before it is added and may refuse it.

This module imports nothing of tolu: every floor may use it.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")


class RegistryError(Exception):
    """A registry used wrongly; the message names the kind of thing and the name."""


class UnknownName(RegistryError, LookupError):
    """A name nobody registered; the message lists the known names."""

    def __init__(self, kind: str, name: str, known: Sequence[str]) -> None:
        super().__init__(f"unknown {kind} {name!r} (known: {', '.join(known) or 'none'})")
        self.kind = kind
        self.name = name
        self.known = list(known)


class DuplicateName(RegistryError, ValueError):
    """A name registered a second time."""


class Registry(Generic[T]):
    """Objects of one kind by name; see the module docstring for the rules."""

    def __init__(
        self,
        kind: str,
        *,
        modules: Mapping[str, str] | None = None,
        check: Callable[[str, T], None] | None = None,
    ) -> None:
        #: what the things are called in messages ("scheduler", "transfer backend").
        self.kind = kind
        self._modules = dict(modules or {})
        self._check = check
        self._items: dict[str, T] = {}

    def __repr__(self) -> str:
        return f"<Registry of {self.kind}: {', '.join(self.names())}>"

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator: ``@registry.register("name")`` adds the class (or object) it decorates."""

        def deco(obj: T) -> T:
            self.add(name, obj)
            return obj

        return deco

    def add(self, name: str, obj: T) -> None:
        existing = self._items.get(name)
        if existing is not None:
            raise DuplicateName(
                f"{self.kind} {name!r} registered twice: {_where(existing)} and {_where(obj)}"
            )
        if self._check is not None:
            self._check(name, obj)
        if isinstance(obj, type):
            obj.name = name  # type: ignore[attr-defined]  # the classes' ``name: ClassVar[str]``
        self._items[name] = obj

    def get(self, name: str) -> T:
        """The object registered as ``name``; its module (``modules``) is imported on first use."""
        if name not in self._items and name in self._modules:
            importlib.import_module(self._modules[name])
            if name not in self._items:
                raise RegistryError(f"{self.kind} {name!r}: {self._modules[name]} does not register it")
        try:
            return self._items[name]
        except KeyError:
            raise UnknownName(self.kind, name, self.names()) from None

    def names(self) -> list[str]:
        """Every known name, sorted: registered ones and those of ``modules`` not imported yet."""
        return sorted(self._items.keys() | self._modules.keys())

    def __contains__(self, name: object) -> bool:
        return name in self._items or name in self._modules

    def items(self) -> Iterator[tuple[str, T]]:
        """What is registered so far, in the order it was registered (``modules`` not imported)."""
        return iter(list(self._items.items()))


def _where(obj: object) -> str:
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', repr(obj))}"
