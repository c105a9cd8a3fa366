"""Locations: the registry, detection (pure), and what a run's header says."""

from __future__ import annotations

import re
import socket
from pathlib import Path

import pytest

from harness.locations import LocationsError, Registry, detect, load, parse
from harness.probes import Probe

LAB = """
locations:
  - name: lab
    hostnames: ['{host}']
    scheduler: slurm
    mpi_launcher: srun
    node: {{cpus: 8, gpus: 1}}
    features: [unobtanium, mpi]
    site_settings: {{scheduler: {{default_queue: lab-q}}}}
  - name: gpu-box
    detect: {{features: [gpu]}}
    features: [gpu]
"""


def registry(host: str = "lab-login1") -> Registry:
    return Registry(parse(LAB.format(host=host), "lab.yaml") + load().locations)


def test_shipped_defaults_load() -> None:
    reg = load()
    names = [loc.name for loc in reg.locations]
    assert {"workstation", "ci", "slurm-cluster", "pbs-cluster"} <= set(names)
    assert [loc.name for loc in reg.locations if loc.default] == ["workstation"]


def test_hostname_pattern_detects() -> None:
    det = detect(registry(r"lab-login\d+$"), hostname="lab-login3", env={})
    assert det.location.name == "lab"
    assert det.reason == "detected: hostname 'lab-login3' matches 'lab-login\\\\d+$'"


def test_env_detects_ci_and_default_otherwise() -> None:
    reg = load()
    assert detect(reg, hostname="laptop", env={"CI": "true"}).location.name == "ci"
    det = detect(reg, hostname="laptop", env={"CI": "false"})
    assert det.location.name == "workstation"
    assert det.reason == "default: no location matches hostname 'laptop'"


def test_probe_condition_detects() -> None:
    gpu = (Probe("gpu", True, "1 GPU"),)
    assert detect(registry(), hostname="x", env={}, probes=gpu).location.name == "gpu-box"
    assert detect(registry(), hostname="x", env={}).location.name == "workstation"


def test_named_location_wins_and_unknown_is_an_error() -> None:
    det = detect(registry(), hostname="lab-login1", env={}, named="pbs-cluster")
    assert (det.location.name, det.reason) == ("pbs-cluster", "named with --location")
    with pytest.raises(LocationsError, match=r"unknown location 'nowhere' \(known: .*workstation"):
        detect(registry(), hostname="x", env={}, named="nowhere")


def test_probes_override_declared_features() -> None:
    probes = (Probe("mpi", False, "mpiexec not on PATH"), Probe("docker", True, "engine answers"))
    det = detect(registry(), hostname="lab-login1", env={}, probes=probes)
    assert det.features == {"unobtanium", "docker"}
    assert det.absent_reason("mpi") == "mpi: mpiexec not on PATH"
    assert "not a feature of location 'lab'" in det.absent_reason("quantum")


def test_user_file_overrides_shipped_entry_of_same_name(tmp_path: Path) -> None:
    path = tmp_path / "mine.yaml"
    path.write_text("locations:\n  - name: workstation\n    default: true\n    features: [unobtanium]\n")
    reg = load([path])
    assert reg.get("workstation").features == ["unobtanium"]
    assert [loc.name for loc in reg.locations].count("workstation") == 1


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("locations: [{name: x, colour: red}]", r"location 'x': colour: Extra inputs are not permitted"),
        ("locations: [{name: x, hostnames: ['(']}]", r"location 'x': hostnames: .*hostname pattern '\('"),
        ("locations: [{name: x}, {name: x}]", r"location 'x' defined twice"),
        ("nothing: here", r"expected a mapping with a 'locations' list"),
        ("locations: [", r"not valid YAML"),
    ],
)
def test_bad_locations_file_names_file_and_entry(text: str, message: str) -> None:
    with pytest.raises(LocationsError, match=rf"^bad\.yaml: .*{message}"):
        parse(text, "bad.yaml")


def test_header_says_where_and_why(tree: pytest.Pytester) -> None:
    tree.makefile(".yaml", lab=LAB.format(host=re.escape(socket.gethostname()) + "$"))
    tree.makepyfile(**{"suites/test_x.py": "def test_x(): pass"})
    result = tree.runpytest("--locations", "lab.yaml")
    result.stdout.fnmatch_lines(
        [
            f"tolu location: lab (detected: hostname '{socket.gethostname()}' matches *)",
            "tolu features present: *",
            "tolu features absent: *",
        ]
    )
    named = tree.runpytest("--locations", "lab.yaml", "--location", "pbs-cluster")
    named.stdout.fnmatch_lines(["tolu location: pbs-cluster (named with --location)"])


def test_ini_option_and_env_name_the_location(tree: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    tree.makefile(".yaml", lab=LAB.format(host="never-matches$"))
    tree.makeini(
        "[pytest]\ntolu = true\ntestpaths = suites\ntolu_locations = lab.yaml\n"
        "filterwarnings = ignore::pytest.PytestAssertRewriteWarning\n"
    )
    tree.makepyfile(**{"suites/test_x.py": "def test_x(): pass"})
    monkeypatch.setenv("TOLU_LOCATION", "lab")
    result = tree.runpytest()
    result.stdout.fnmatch_lines(["tolu location: lab (named with $TOLU_LOCATION)"])


def test_unknown_location_is_a_usage_error(tree: pytest.Pytester) -> None:
    tree.makepyfile(**{"suites/test_x.py": "def test_x(): pass"})
    result = tree.runpytest("--location", "atlantis")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*unknown location 'atlantis' (known: *workstation*)*"])


def test_missing_components_are_reported_not_fatal(
    tree: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))  # no sbatch, qsub, nvidia-smi
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-docker.sock")
    monkeypatch.setenv("TOLU_TEST_POSTGRES_URL", "postgresql+psycopg://tolu:tolu@127.0.0.1:1/postgres")
    tree.makepyfile(**{"suites/test_x.py": "def test_x(): pass"})
    result = tree.runpytest()
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        [
            "tolu features absent: docker (no docker engine socket at */no-docker.sock); "
            "slurm (sbatch not on PATH); pbs (qsub not on PATH); postgres (cannot connect to *); "
            "gpu (nvidia-smi not on PATH)*",
        ]
    )
