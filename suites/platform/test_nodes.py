"""Node discovery: host-list syntax, each source, node shapes from settings."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from pydantic import ValidationError

from runner.platform import nodes
from runner.registry import DuplicateName, UnknownName
from runner.site.settings import LauncherSettings, NodeShape


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("nid[001-003,007]", ["nid001", "nid002", "nid003", "nid007"]),
        ("login1", ["login1"]),
        ("a[1-2],b,c[09-11]", ["a1", "a2", "b", "c09", "c10", "c11"]),
        ("node[8-10]", ["node8", "node9", "node10"]),
        ("r[1-2]n[1-2]", ["r1n1", "r1n2", "r2n1", "r2n2"]),
        ("x[3]-ib", ["x3-ib"]),
    ],
)
def test_expand_hostlist(text: str, expected: list[str]) -> None:
    assert nodes.expand_hostlist(text) == expected


@pytest.mark.parametrize("bad", ["nid[1-", "nid]1[", "nid[a-b]", "nid[5-3]"])
def test_expand_hostlist_rejects_bad_syntax(bad: str) -> None:
    with pytest.raises(ValueError, match="host list"):
        nodes.expand_hostlist(bad)


def test_slurm_nodes_with_shape_from_settings() -> None:
    settings = LauncherSettings(node=NodeShape(cpus=64, gpus=4))
    found = nodes.discover(settings, env={"SLURM_JOB_NODELIST": "nid[001-003,007]"})
    assert [n.hostname for n in found] == ["nid001", "nid002", "nid003", "nid007"]
    assert {(n.cpus, n.gpus) for n in found} == {(64, 4)}


def test_pbs_nodefile_one_line_per_core(tmp_path: Path) -> None:
    nodefile = tmp_path / "nodefile"
    nodefile.write_text("x1\nx1\nx2\nx2\n")
    found = nodes.discover(LauncherSettings(node=NodeShape(cpus=2)), env={"PBS_NODEFILE": str(nodefile)})
    assert [n.hostname for n in found] == ["x1", "x2"]


def test_cobalt_partname_and_nodefile(tmp_path: Path) -> None:
    found = nodes.discover(LauncherSettings(), env={"COBALT_PARTNAME": "1-3,12"})
    assert [n.hostname for n in found] == ["nid00001", "nid00002", "nid00003", "nid00012"]
    nodefile = tmp_path / "cobalt"
    nodefile.write_text("thetagpu01\nthetagpu02\n")
    env = {"COBALT_PARTNAME": "1-3", "COBALT_NODEFILE": str(nodefile)}
    assert [n.hostname for n in nodes.discover(LauncherSettings(), env=env)] == ["thetagpu01", "thetagpu02"]


def test_hostfile_slots_give_cpus_and_win_over_scheduler(tmp_path: Path) -> None:
    hostfile = tmp_path / "hosts"
    hostfile.write_text("# three fake nodes\nn1:2\nn2 slots=3\nn3\n")
    found = nodes.discover(LauncherSettings(), env={"SLURM_JOB_NODELIST": "nid1"}, hostfile=str(hostfile))
    assert [(n.hostname, n.cpus) for n in found] == [("n1", 2), ("n2", 3), ("n3", nodes.detect_cpus())]


def test_local_alone_when_nothing_else_applies() -> None:
    found = nodes.discover(LauncherSettings(), env={})
    assert [n.hostname for n in found] == [socket.gethostname()]
    assert found[0].cpus == nodes.detect_cpus()
    assert found[0].gpus == 0


def test_gpus_detected_from_cuda_visible_devices() -> None:
    found = nodes.discover(LauncherSettings(), env={"CUDA_VISIBLE_DEVICES": "0,1,2"})
    assert found[0].gpus == 3


@pytest.mark.parametrize(
    ("env", "ids"),
    [
        ({"CUDA_VISIBLE_DEVICES": "2,3"}, ("2", "3")),
        ({"CUDA_VISIBLE_DEVICES": "GPU-8f2c, MIG-1a"}, ("GPU-8f2c", "MIG-1a")),
        ({"ROCR_VISIBLE_DEVICES": "4,5,6"}, ("4", "5", "6")),
        ({"ZE_AFFINITY_MASK": "1"}, ("1",)),
        ({"CUDA_VISIBLE_DEVICES": "-1"}, ()),
        ({"CUDA_VISIBLE_DEVICES": ""}, ()),
        ({"CUDA_VISIBLE_DEVICES": "0,-1,2"}, ("0",)),  # like CUDA: the list ends at an invalid id
    ],
)
def test_gpu_ids_are_the_allocations_own(env: dict[str, str], ids: tuple[str, ...]) -> None:
    found = nodes.discover(LauncherSettings(), env=env)
    assert found[0].gpu_ids == ids and found[0].gpus == len(ids)


def test_declared_gpus_take_the_allocations_ids_and_never_more() -> None:
    env = {"CUDA_VISIBLE_DEVICES": "2,3,5"}
    two = nodes.discover(LauncherSettings(node=NodeShape(gpus=2)), env=env)
    assert two[0].gpu_ids == ("2", "3")
    assert nodes.discover(LauncherSettings(node=NodeShape(gpus=4)), env={})[0].gpu_ids == ("0", "1", "2", "3")
    with pytest.raises(nodes.DiscoveryError, match=r"gpus is 4 but the allocation lists 3 GPU\(s\) "
                       r"\(CUDA_VISIBLE_DEVICES=2,3,5\)"):
        nodes.discover(LauncherSettings(node=NodeShape(gpus=4)), env=env)
    explicit = nodes.discover(LauncherSettings(node=NodeShape(gpus=2, gpu_ids=["7", "9"])), env=env)
    assert explicit[0].gpu_ids == ("7", "9")


def test_gpu_settings_are_checked_when_loaded() -> None:
    with pytest.raises(ValidationError, match="gpu_variable"):
        LauncherSettings(gpu_variable="NVIDIA_GPUS")
    with pytest.raises(ValidationError, match="distinct"):
        LauncherSettings(node=NodeShape(gpu_ids=["1", "1"]))


def test_gpu_variable_auto_follows_the_allocation() -> None:
    assert nodes.gpu_env(LauncherSettings(), {"ROCR_VISIBLE_DEVICES": "1"}).variable == "ROCR_VISIBLE_DEVICES"
    assert nodes.gpu_env(LauncherSettings(), {"CUDA_VISIBLE_DEVICES": "1"}).variable == "CUDA_VISIBLE_DEVICES"
    named = nodes.gpu_env(LauncherSettings(gpu_variable="ZE_AFFINITY_MASK", hide_gpus=False), {})
    assert (named.variable, named.hide) == ("ZE_AFFINITY_MASK", False)


def test_explicit_source_missing_its_input_is_a_clear_error() -> None:
    with pytest.raises(nodes.DiscoveryError, match="SLURM_JOB_NODELIST"):
        nodes.discover(LauncherSettings(node_discovery="slurm"), env={})
    with pytest.raises(UnknownName, match="known: auto, cobalt, hostfile, local, pbs, slurm"):
        nodes.discover(LauncherSettings(node_discovery="lsf"), env={})


def test_duplicate_registration_is_an_error() -> None:
    with pytest.raises(DuplicateName, match="node discovery 'slurm' registered twice"):
        nodes.register("slurm")(nodes.SlurmDiscovery)
