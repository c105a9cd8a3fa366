"""Registry[T]: the one set of rules behind every registry of tolu."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest

from runner.platform import app_launchers, nodes, schedulers, transfer
from runner.registry import DuplicateName, Registry, RegistryError, UnknownName
from runner.site import autoscaler, service


class Thing:
    name: ClassVar[str] = ""


def test_register_names_the_class_and_get_returns_it() -> None:
    things: Registry[type[Thing]] = Registry("thing")

    @things.register("first")
    class First(Thing):
        pass

    assert things.get("first") is First
    assert First.name == "first"
    assert "first" in things and "second" not in things


def test_a_duplicate_name_is_an_error_naming_both_even_for_the_same_class() -> None:
    things: Registry[type[Thing]] = Registry("thing")

    @things.register("one")
    class One(Thing):
        pass

    class Other(Thing):
        pass

    with pytest.raises(DuplicateName, match=r"thing 'one' registered twice: .*\.One and .*\.Other"):
        things.register("one")(Other)
    with pytest.raises(DuplicateName, match="registered twice"):
        things.add("one", One)
    assert things.get("one") is One  # the first registration stays


def test_an_unknown_name_lists_the_known_ones_sorted() -> None:
    things: Registry[type[Thing]] = Registry("thing")
    for name in ("zeta", "alpha", "mid"):
        things.add(name, type(name, (Thing,), {}))
    with pytest.raises(UnknownName, match=r"^unknown thing 'nope' \(known: alpha, mid, zeta\)$") as info:
        things.get("nope")
    assert (info.value.kind, info.value.name, info.value.known) == ("thing", "nope", ["alpha", "mid", "zeta"])
    # a LookupError for callers that catch any failed lookup (tolu site start does)
    assert isinstance(info.value, LookupError)
    with pytest.raises(UnknownName, match=r"known: none"):
        Registry[Thing]("empty").get("x")


def test_items_keep_the_registration_order_names_are_sorted() -> None:
    things: Registry[type[Thing]] = Registry("thing")
    for name in ("b", "c", "a"):
        things.add(name, type(name, (Thing,), {}))
    assert [name for name, _ in things.items()] == ["b", "c", "a"]
    assert things.names() == ["a", "b", "c"]


def test_check_may_refuse_a_registration() -> None:
    def needs_doc(name: str, cls: type[Thing]) -> None:
        if not cls.__doc__:
            raise RegistryError(f"thing {name!r} has no docstring")

    things: Registry[type[Thing]] = Registry("thing", check=needs_doc)
    with pytest.raises(RegistryError, match="thing 'bare' has no docstring"):
        things.add("bare", type("Bare", (Thing,), {}))
    assert "bare" not in things


def test_objects_other_than_classes_are_registered_as_they_are() -> None:
    functions: Registry[object] = Registry("function")
    functions.add("len", len)
    assert functions.get("len") is len


PLUGIN_MODULES = ("tolu_test_things", "tolu_test_things_good", "tolu_test_things_silent")


@pytest.fixture
def plugins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A registry module whose names map to modules that register themselves on import."""
    (tmp_path / "tolu_test_things.py").write_text(
        textwrap.dedent(
            """\
            from runner.registry import Registry

            class Thing:
                name = ""

            THINGS = Registry(
                "thing", modules={"good": "tolu_test_things_good", "silent": "tolu_test_things_silent"}
            )
            """
        )
    )
    (tmp_path / "tolu_test_things_good.py").write_text(
        "from tolu_test_things import THINGS, Thing\n\n\n@THINGS.register('good')\nclass Good(Thing): ...\n"
    )
    (tmp_path / "tolu_test_things_silent.py").write_text("# registers nothing\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    for name in PLUGIN_MODULES:
        sys.modules.pop(name, None)


def test_a_module_is_imported_on_the_first_lookup_of_its_name(plugins: Path) -> None:
    from tolu_test_things import THINGS  # type: ignore[import-not-found]

    assert THINGS.names() == ["good", "silent"]  # known before any import
    assert "good" in THINGS and "tolu_test_things_good" not in sys.modules
    good = THINGS.get("good")
    assert "tolu_test_things_good" in sys.modules
    assert good.__name__ == "Good" and good.name == "good"
    assert THINGS.get("good") is good
    with pytest.raises(RegistryError, match="thing 'silent': tolu_test_things_silent does not register it"):
        THINGS.get("silent")


def test_a_module_that_cannot_be_imported_says_what_is_missing(plugins: Path) -> None:
    (plugins / "tolu_test_things_good.py").write_text("import tolu_no_such_library\n")
    from tolu_test_things import THINGS

    # as it is, so that the CLI can say which extra to install
    with pytest.raises(ModuleNotFoundError, match="tolu_no_such_library"):
        THINGS.get("good")


@pytest.mark.parametrize(
    ("registry", "kind", "builtins"),
    [
        (schedulers.SCHEDULERS, "scheduler", ["cobalt", "local", "lsf", "pbs", "slurm"]),
        (app_launchers.APP_LAUNCHERS, "app launcher", ["local", "mpich", "openmpi", "srun"]),
        (nodes.NODE_DISCOVERY, "node discovery", ["cobalt", "hostfile", "local", "pbs", "slurm"]),
        (transfer.TRANSFER_BACKENDS, "transfer backend", ["local", "globus"]),
        (
            service.SERVICES,
            "service",
            ["autoscaler", "heartbeat", "processing", "queue_maintainer", "scheduler", "transfer"],
        ),
        (autoscaler.POLICIES, "autoscaler policy", ["backlog"]),
    ],
)
def test_every_registry_of_tolu_is_one(registry: Registry[type], kind: str, builtins: list[str]) -> None:
    assert isinstance(registry, Registry) and registry.kind == kind
    assert set(builtins) <= set(registry.names())
    with pytest.raises(UnknownName, match=f"unknown {kind} 'nope'"):
        registry.get("nope")
    first = builtins[0]
    cls = registry.get(first)
    assert cls.name == first
    with pytest.raises(DuplicateName, match=f"{kind} '{first}' registered twice"):
        registry.add(first, type("Impostor", (cls,), {}))
