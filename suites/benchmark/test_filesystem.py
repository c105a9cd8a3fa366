"""harness/bench/filesystem.py: which file system the jobs' directories are on, and what one costs there."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from harness.bench import engine, filesystem, machine

MOUNTINFO = """\
22 27 0:21 / /proc rw,relatime - proc proc rw
27 1 254:0 / / rw,relatime - ext4 /dev/vda rw,discard
25 24 0:23 / /dev/shm rw,relatime - tmpfs tmpfs rw,size=24684096k
40 27 254:16 / /scratch\\040space rw,relatime - ext4 /dev/vdb rw
41 27 254:32 / /scratch rw,relatime - xfs /dev/vdc rw
"""


def _jbd2(tmp_path: Path, *devices: str) -> Path:
    """A stand-in for /proc/fs/jbd2: a directory per journaled device."""
    root = tmp_path / "jbd2"
    root.mkdir()
    for device in devices:
        (root / f"{device}-8").mkdir()
    return root


def test_the_longest_mount_point_that_holds_the_path_is_its_file_system(tmp_path: Path) -> None:
    jbd2 = _jbd2(tmp_path)
    fs = filesystem.of("/scratch/run/site", mountinfo=MOUNTINFO, jbd2=jbd2)
    assert fs == filesystem.FileSystem(type="xfs", mount_point="/scratch", device="vdc", journal=None)
    # an escaped space in a mount point, and a sibling whose name only starts alike
    assert filesystem.of("/scratch space/x", mountinfo=MOUNTINFO, jbd2=jbd2).device == "vdb"  # type: ignore[union-attr]
    assert filesystem.of("/scratchy", mountinfo=MOUNTINFO, jbd2=jbd2).mount_point == "/"  # type: ignore[union-attr]
    shm = filesystem.of("/dev/shm/x", mountinfo=MOUNTINFO, jbd2=jbd2)
    assert shm is not None and shm.type == "tmpfs" and shm.device is None
    assert not shm.reuses_freed_inodes_slowly


def test_ext4_says_whether_it_keeps_a_journal(tmp_path: Path) -> None:
    bare = filesystem.of("/work", mountinfo=MOUNTINFO, jbd2=_jbd2(tmp_path))
    assert bare is not None and bare.journal is False and bare.reuses_freed_inodes_slowly
    assert bare.describe() == "ext4 on / (vda), no journal"
    (tmp_path / "j").mkdir()
    journaled = filesystem.of("/work", mountinfo=MOUNTINFO, jbd2=_jbd2(tmp_path / "j", "vda"))
    assert journaled is not None and journaled.journal is True and not journaled.reuses_freed_inodes_slowly
    assert journaled.describe() == "ext4 on / (vda)"
    # where /proc says nothing about journals, nothing is claimed
    unknown = filesystem.of("/work", mountinfo=MOUNTINFO, jbd2=tmp_path / "absent")
    assert unknown is not None and unknown.journal is None and not unknown.reuses_freed_inodes_slowly


def test_no_mount_holds_a_relative_path_outside_them_all() -> None:
    assert filesystem.of("/x", mountinfo="22 27 0:21 / /proc rw - proc proc rw\n") is None


def test_a_job_directory_costs_cpu_and_nothing_is_deleted(tmp_path: Path) -> None:
    us = filesystem.workdir_us(tmp_path / "probe", count=25)
    assert us > 0
    (made,) = (tmp_path / "probe").iterdir()
    assert sorted(int(p.name) for p in made.iterdir()) == list(range(25))
    assert all((p / "job.out").is_file() for p in made.iterdir())


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/mountinfo (Linux)")
def test_a_run_names_the_file_system_and_warns_where_freed_inodes_come_back_slowly(tmp_path: Path) -> None:
    info = machine.collect(work_dir=tmp_path)
    here = filesystem.of(tmp_path)
    assert here is not None and info.file_system == here.describe()
    assert info.slow_inode_reuse == here.reuses_freed_inodes_slowly
    # the note follows the flag, whatever this machine's disk is
    slow, settled = (info.model_copy(update={"slow_inode_reuse": flag}) for flag in (True, False))
    assert filesystem.SLOW_REUSE_NOTE in engine._notes(slow, [])
    assert filesystem.SLOW_REUSE_NOTE not in engine._notes(settled, [])
