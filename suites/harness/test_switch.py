"""The harness is off until a project turns it on (pytest_tolu.py, the pytest11 entry point).

Off: another project's run is the run it would be without tolu installed -- the same
output and exit status, the same files written, no probes, no harness module imported,
its own options and a ``harness`` package of its own work. On (by ``--tolu``, the ini
key, ``-p harness.plugin`` or ``pytest_plugins``): header, markers, probes, artifacts;
without the ``[harness]`` extra, one line saying which extra to install.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

#: commands the location probes run; fakes of them note every call in a log.
PROBED = ("sbatch", "sinfo", "qsub", "qstat", "nvidia-smi")

#: an unrelated project: its own options named like the harness's, a ``harness`` package
#: of its own, and a test using a ``server`` marker it never registered.
PROJECT = {
    "pyproject.toml": '[tool.pytest.ini_options]\ntestpaths = ["tests"]\n',
    "conftest.py": (
        "def pytest_addoption(parser):\n"
        "    for name in ('--server', '--database', '--location', '--require'):\n"
        "        parser.addoption(name, default='ours')\n"
    ),
    "harness/__init__.py": "OWN = True\n",
    "tests/test_project.py": (
        "import sys\n\n"
        "import harness\n\n\n"
        "def test_its_own_harness_package():\n"
        "    assert harness.OWN\n\n\n"
        "def test_its_own_options(pytestconfig):\n"
        "    assert pytestconfig.getoption('server') == 'ours'\n\n\n"
        "def test_no_tolu_module_is_imported():\n"
        "    assert not [m for m in sys.modules if m.startswith(('harness.', 'runner'))]\n\n\n"
        "def test_plain():\n"
        "    assert 1 + 1 == 2\n"
    ),
    "marked/test_marked.py": (
        "import pytest\n\n\n@pytest.mark.server\ndef test_marked():\n    pass\n"
    ),
}


@pytest.fixture
def probe_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """PATH starts with fakes of the probed commands; each call is a line in the log."""
    log = tmp_path / "probes.log"
    bin_dir = tmp_path / "fake-bin"
    bin_dir.mkdir()
    for name in PROBED:
        fake = bin_dir / name
        fake.write_text(f'#!/bin/sh\necho "{name} $*" >> {log}\nexit 1\n')
        fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return log


def _make_project(root: Path) -> Path:
    for name, text in PROJECT.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _normalized_files(root: Path) -> dict[str, bytes]:
    out = {}
    for name, data in _files(root).items():
        if name.endswith(".xml"):  # junit: when, how long and where it ran
            data = re.sub(rb'(timestamp|time|hostname)="[^"]*"', rb'\1="*"', data)
        out[name] = data
    return out


def _run(project: Path, *args: str) -> tuple[int, str]:
    """``python -m pytest ARGS`` in the project, as its developers run it (their folder,
    hence their ``harness`` package, first on sys.path)."""
    done = subprocess.run(
        [sys.executable, "-m", "pytest", *args],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    text = (done.stdout + done.stderr).replace(str(project), "<project>")
    return done.returncode, re.sub(r" in \d+\.\d+s", " in <time>", text)


def _without_tolu_in_plugin_list(output: str) -> str:
    """pytest itself lists every loaded plugin distribution in its header."""

    def drop_tolu(line: re.Match[str]) -> str:
        return "plugins: " + ", ".join(n for n in line[1].split(", ") if not n.startswith("tolu-"))

    return re.sub(r"^plugins: (.*)$", drop_tolu, output, flags=re.M)


@pytest.mark.parametrize(
    "args",
    [
        pytest.param((), id="plain"),
        pytest.param(("--junitxml=junit.xml",), id="junitxml"),
        pytest.param(("--strict-markers", "marked"), id="strict-markers"),
        pytest.param(("--markers",), id="markers"),
    ],
)
def test_an_unrelated_project_runs_as_without_tolu(
    pytester: pytest.Pytester, probe_log: Path, args: tuple[str, ...]
) -> None:
    blocked = _make_project(pytester.path / "blocked" / "project")
    default = _make_project(pytester.path / "default" / "project")

    blocked_rc, blocked_out = _run(blocked, "-p", "no:tolu", *args)
    default_rc, default_out = _run(default, *args)

    if "test session starts" in default_out:  # (--markers prints no header)
        assert re.search(r"^plugins: .*\btolu-", default_out, re.M), "tolu's entry point was not loaded"
    assert (default_rc, _without_tolu_in_plugin_list(default_out)) == (blocked_rc, blocked_out)
    assert _normalized_files(default) == _normalized_files(blocked)
    assert not probe_log.exists(), probe_log.read_text()
    assert "tolu" not in _without_tolu_in_plugin_list(default_out)
    assert not (default / "artifacts").exists()
    if args == ():
        assert default_rc == 0 and "4 passed" in default_out, default_out
    if "marked" in args:
        assert default_rc == pytest.ExitCode.INTERRUPTED
        assert "'server' not found in `markers` configuration option" in default_out, default_out
    if "--junitxml=junit.xml" in args:
        assert b'tests="4"' in (default / "junit.xml").read_bytes()


ACTIVATIONS = {
    "--tolu": (("--tolu",), {}),
    "ini tolu = true": ((), {"pytest.ini": "[pytest]\ntolu = true\n"}),
    "-p harness.plugin": (("-p", "harness.plugin"), {}),
    "pytest_plugins in conftest.py": ((), {"conftest.py": 'pytest_plugins = ["harness.plugin"]\n'}),
}


@pytest.mark.parametrize("how", list(ACTIVATIONS))
def test_a_project_turns_the_harness_on(pytester: pytest.Pytester, probe_log: Path, how: str) -> None:
    args, files = ACTIVATIONS[how]
    for name, text in {"pytest.ini": "[pytest]\n", **files}.items():
        (pytester.path / name).write_text(text)
    pytester.makepyfile(test_marked="import pytest\n\n@pytest.mark.server\ndef test_marked():\n    pass\n")

    result = pytester.runpytest("--strict-markers", "-p", "no:cacheprovider", *args)

    result.assert_outcomes(passed=1)  # the harness registered `server`
    result.stdout.fnmatch_lines(["tolu location: *", "tolu artifacts: *"])
    (run_dir,) = (pytester.path / "artifacts").iterdir()
    assert {"junit.xml", "report.json", "report.html"} <= {p.name for p in run_dir.iterdir()}
    probed = {line.split()[0] for line in probe_log.read_text().splitlines()}
    assert {"sinfo", "qstat", "nvidia-smi"} <= probed


def test_turned_on_without_the_harness_extra_it_says_which_to_install(
    tree: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    from runner import extras

    monkeypatch.setattr(extras, "missing_requirements", lambda extra: ["matplotlib"])
    tree.makepyfile(**{"suites/test_x.py": "def test_x(): pass"})
    result = tree.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["ERROR: the tolu harness (pytest plugin) needs the [harness] extra (missing: matplotlib): "
         "pip install 'tolu[harness]'"]
    )
    assert not (tree.path / "artifacts").exists()
