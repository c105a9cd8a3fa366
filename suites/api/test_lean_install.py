"""``pip install tolu`` without extras: the runner works, tooling says in one line what to install.

The lean interpreter is a real venv whose site-packages holds exactly the distributions
that tolu's base requirements pull in (resolved from the installed metadata, the way pip
resolved them), linked from this environment's site-packages; the extras' distributions
(matplotlib, jinja2, pytest, docker, globus-sdk, mpich, ...) are neither importable nor
visible to ``importlib.metadata`` there, as after a real ``pip install .``.
"""

from __future__ import annotations

import os
import subprocess
import sysconfig
import venv
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from runner.cli import main
from runner.extras import MissingExtra, missing_requirements, require_extra

# ---------------------------------------------------------------- a lean interpreter


def base_closure(name: str = "tolu", extras: frozenset[str] = frozenset()) -> set[str]:
    """Canonical names of ``name`` and every installed distribution its requirements pull in."""
    visited: set[tuple[str, str]] = set()  # (distribution, extra or "")
    todo = [(name, extra) for extra in ("", *extras)]
    while todo:
        dist_name, extra = todo.pop()
        key = canonicalize_name(dist_name)
        if (key, extra) in visited:
            continue
        visited.add((key, extra))
        for line in metadata.requires(dist_name) or []:
            req = Requirement(line)
            if req.marker is None or req.marker.evaluate({"extra": extra}):
                todo += [(req.name, e) for e in ("", *req.extras)]
    return {key for key, _ in visited}


@pytest.fixture(scope="module")
def lean_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    keep = base_closure()
    assert "matplotlib" not in keep and "pytest" not in keep and "mpich" not in keep, keep
    root = tmp_path_factory.mktemp("lean") / "venv"
    venv.EnvBuilder(with_pip=False, symlinks=True).create(root)
    python = root / "bin" / "python"
    lean_site = Path(
        subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    )
    here = Path(sysconfig.get_path("purelib"))
    owners: dict[str, set[str]] = {}
    for dist in metadata.distributions(path=[str(here)]):
        name = canonicalize_name(dist.metadata["Name"])  # parsed once: 40 s when read per file
        for file in dist.files or []:
            if file.parts and file.parts[0] != "..":
                owners.setdefault(file.parts[0], set()).add(name)
    for entry in here.iterdir():
        # an entry shared by several distributions (__pycache__) is left out: nothing needs it
        if owners.get(entry.name, set()) and owners[entry.name] <= keep:
            (lean_site / entry.name).symlink_to(entry)
    return python


def run(python: Path, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "COV_", "PYTEST_"))}
    return subprocess.run(
        [str(python), *args], capture_output=True, text=True, check=False, timeout=120, cwd=cwd, env=env
    )


def test_the_lean_interpreter_has_the_runner_and_not_the_extras(lean_python: Path, tmp_path: Path) -> None:
    probe = run(
        lean_python,
        "-c",
        "import importlib.util as u, importlib.metadata as m; "
        "print([n for n in ('matplotlib', 'jinja2', 'pytest', 'docker', 'globus_sdk') if u.find_spec(n)]); "
        "print(m.version('tolu'))",
        cwd=tmp_path,
    )
    assert probe.returncode == 0, probe.stderr
    assert probe.stdout.splitlines() == ["[]", metadata.version("tolu")]
    # what a user runs: server, site agent, launcher, CLI
    imports = run(
        lean_python,
        "-c",
        "import runner.cli.main, runner.server.app, runner.site.agent, runner.launcher.mpi_mode, "
        "runner.launcher.serial_start, runner.client",
        cwd=tmp_path,
    )
    assert imports.returncode == 0, imports.stderr


def test_lean_tolu_runs_its_own_commands(lean_python: Path, tmp_path: Path) -> None:
    helped = run(lean_python, "-m", "runner.cli.main", "--help", cwd=tmp_path)
    assert helped.returncode == 0, helped.stderr
    assert "bench" in helped.stdout and "server" in helped.stdout
    migrated = run(
        lean_python, "-m", "runner.cli.main", "server", "migrate", "--data-dir", str(tmp_path / "data")
    )
    assert migrated.returncode == 0, migrated.stderr


@pytest.mark.parametrize(
    "argv",
    [["bench", "throughput", "--jobs", "10"], ["bench", "api"], ["bench", "launcher", "--repeat", "2"]],
)
def test_lean_tolu_bench_names_the_extra_in_one_line(
    lean_python: Path, tmp_path: Path, argv: list[str]
) -> None:
    done = run(lean_python, "-m", "runner.cli.main", *argv, "--out", str(tmp_path / "out"), cwd=tmp_path)
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr.splitlines() == [
        "Error: tolu bench needs the [bench] extra (missing: matplotlib, jinja2): pip install 'tolu[bench]'"
    ]
    assert not (tmp_path / "out").exists(), "nothing may start before the extra is checked"


@pytest.mark.parametrize("argv", [["ci", "integration"], ["ci", "image"]])
def test_lean_tolu_ci_names_the_extra_in_one_line(lean_python: Path, tmp_path: Path, argv: list[str]) -> None:
    done = run(lean_python, "-m", "runner.cli.main", *argv, cwd=tmp_path)
    assert done.returncode == 1
    assert done.stdout == ""
    (line,) = done.stderr.splitlines()
    assert line.startswith("Error: tolu ci needs the [harness] extra (missing: "), line
    assert line.endswith(": pip install 'tolu[harness]'"), line
    assert not (tmp_path / "artifacts").exists(), "nothing may start before the extra is checked"


# ---------------------------------------------------------------- runner.extras in this environment


def test_installed_extras_are_not_missing() -> None:
    for extra in ("bench", "harness", "container", "globus", "mpich", "all", "dev"):
        assert missing_requirements(extra) == [], extra
        require_extra(extra, f"feature {extra}")


def test_an_unknown_extra_is_a_bug_not_a_hint() -> None:
    with pytest.raises(ValueError, match="no extra named 'plots'"):
        missing_requirements("plots")


def test_missing_extra_is_one_line_naming_the_extra() -> None:
    exc = MissingExtra("tolu bench", "bench", ["matplotlib", "jinja2"])
    assert isinstance(exc, ImportError)
    assert str(exc) == (
        "tolu bench needs the [bench] extra (missing: matplotlib, jinja2): pip install 'tolu[bench]'"
    )


# ---------------------------------------------------------------- plug-in command groups


@click.group()
def fake() -> None:
    """A plug-in group."""


@fake.command()
def hello() -> None:
    click.echo("hello from a plug-in")


@fake.command()
def needy() -> None:
    raise MissingExtra("tolu fake needy", "globus", ["globus-sdk"])


@pytest.fixture
def plugins(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, list[metadata.EntryPoint]]]:
    """The entry points ``tolu`` sees: this environment's, plus what a test adds."""
    found = {name: list(eps) for name, eps in main.plugins().items()}
    monkeypatch.setattr(main, "plugins", lambda: found)
    yield found


def entry_point(name: str, value: str) -> metadata.EntryPoint:
    return metadata.EntryPoint(name=name, value=value, group=main.PLUGIN_GROUP)


def tolu(*args: str) -> click.testing.Result:
    return CliRunner().invoke(main.cli, list(args), prog_name="tolu")


def test_bench_comes_from_the_entry_point_group() -> None:
    (bench,) = main.plugins()["bench"]
    assert bench.value == "harness.bench.cli:bench"
    assert "bench" not in main.COMMANDS


def test_ci_comes_from_the_entry_point_group() -> None:
    (ci,) = main.plugins()["ci"]
    assert ci.value == "harness.pipeline.cli:ci"
    assert "ci" not in main.COMMANDS


def test_a_registered_group_is_listed_and_runs(plugins: dict[str, list[metadata.EntryPoint]]) -> None:
    plugins["fake"] = [entry_point("fake", f"{__name__}:fake")]
    listed = tolu("--help")
    assert listed.exit_code == 0 and "A plug-in group." in listed.stdout
    said = tolu("fake", "hello")
    assert said.exit_code == 0 and said.stdout == "hello from a plug-in\n"


def test_a_missing_extra_in_any_command_is_one_line(plugins: dict[str, list[metadata.EntryPoint]]) -> None:
    plugins["fake"] = [entry_point("fake", f"{__name__}:fake")]
    failed = tolu("fake", "needy")
    assert failed.exit_code == 1
    assert failed.stderr.splitlines() == [
        "Error: tolu fake needy needs the [globus] extra (missing: globus-sdk): pip install 'tolu[globus]'"
    ]


def test_a_name_registered_twice_is_an_error_naming_both(
    plugins: dict[str, list[metadata.EntryPoint]],
) -> None:
    plugins["server"] = [entry_point("server", f"{__name__}:fake")]
    assert tolu("--help").exit_code == 0, "one bad plug-in must not take the others down"
    failed = tolu("server", "up")
    assert failed.exit_code == 1
    assert failed.stderr.splitlines() == [
        f"Error: tolu server is defined more than once: runner.cli.server:server, {__name__}:fake"
    ]
