"""The file system under a benchmark's job directories: what it is, what a job's directory costs there now.

Every tolu job gets a directory with its output file in it; the pool baseline's tasks
get none. So the ratio to the bare pool carries the file system's price of two new
inodes per job, and that price moves: ext4 without a journal (a common VM disk) skips
every inode freed in the last 60 s (300 s while its inode-table block is dirty) when
it allocates a new one, reading each one's inode to find out (``recently_deleted`` in
the kernel's ``fs/ext4/ialloc.c``). After a large deletion, such as an earlier run's
clean-up, a job's directory costs several times what it costs on a settled disk, and
the run reads that much slower (docs/performance.md, "The file system remembers what
was deleted"). A run records the file system (``Machine.file_system``) and, per trial,
``fs_workdir_us``: the CPU to make a directory with a file in it there, just before
the trial, so that two runs' ratios can be read side by side.
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

#: what a run whose work directory is on such a file system says in its notes
SLOW_REUSE_NOTE = (
    "the job directories are on ext4 without a journal, which skips inodes freed in the last "
    "60-300 s when it makes new ones: a run soon after a large deletion (an earlier run's "
    "clean-up) reads slower; fs_workdir_us says what a job's directory cost in each trial"
)


@dataclass(frozen=True)
class FileSystem:
    """The file system a path is on, as ``/proc/self/mountinfo`` tells it."""

    type: str
    mount_point: str
    #: the device's kernel name (``vda``), when it is a block device
    device: str | None
    #: ext4 only: whether it keeps a journal (None: not ext4, or not known)
    journal: bool | None

    @property
    def reuses_freed_inodes_slowly(self) -> bool:
        return self.type == "ext4" and self.journal is False

    def describe(self) -> str:
        text = f"{self.type} on {self.mount_point}"
        if self.device:
            text += f" ({self.device})"
        if self.journal is False:
            text += ", no journal"
        return text


_OCTAL = re.compile(r"\\([0-7]{3})")


def _unescape(field: str) -> str:
    """Mountinfo's octal escapes (``\\040`` for a space) undone, and nothing else: the
    rest of the path stays as it is, whatever characters it holds."""
    return _OCTAL.sub(lambda m: chr(int(m.group(1), 8)), field)


def parse_mountinfo(text: str) -> list[tuple[str, str, str]]:
    """(mount point, file system type, source) of each mount, in the order listed."""
    out = []
    for line in text.splitlines():
        left, sep, right = line.partition(" - ")
        fields, tail = left.split(), right.split()
        if not sep or len(fields) < 5 or len(tail) < 2:
            continue
        out.append((_unescape(fields[4]), tail[0], _unescape(tail[1])))
    return out


def of(
    path: str | os.PathLike[str],
    *,
    mountinfo: str | None = None,
    jbd2: str | os.PathLike[str] = "/proc/fs/jbd2",
) -> FileSystem | None:
    """The file system ``path`` is on; None where /proc does not say (not Linux)."""
    if mountinfo is None:
        try:
            mountinfo = Path("/proc/self/mountinfo").read_text()
        except OSError:
            return None
    target = os.path.realpath(path)
    best: tuple[str, str, str] | None = None
    for mount in parse_mountinfo(mountinfo):  # the last mount of the longest prefix wins
        point = mount[0]
        inside = target == point or target.startswith(point.rstrip("/") + "/")
        if inside and (best is None or len(point) >= len(best[0])):
            best = mount
    if best is None:
        return None
    point, fs_type, source = best
    device = os.path.basename(source) if source.startswith("/dev/") else None
    journal = None
    if fs_type == "ext4" and device:
        # jbd2 keeps a directory per journaled device (``vda-8``), none for one without
        try:
            journal = any(name.startswith(device + "-") for name in os.listdir(jbd2))
        except OSError:
            journal = None
    return FileSystem(type=fs_type, mount_point=point, device=device, journal=journal)


def workdir_us(where: str | os.PathLike[str], count: int = 200) -> float:
    """CPU microseconds to make a directory with an empty ``job.out`` in it, as each job
    gets, in a new directory under ``where`` (made here), over ``count`` of them.

    Nothing is deleted: a deletion would slow the run that follows on the very file
    systems this is meant to show up (the module above); the benchmark's work
    directory goes, with these, when the benchmark ends."""
    base = Path(where)
    base.mkdir(parents=True, exist_ok=True)
    probe = os.path.join(base, f"fs-probe-{time.time_ns()}")
    os.mkdir(probe)
    started = time.process_time()
    for i in range(count):
        d = f"{probe}/{i}"
        os.mkdir(d)
        os.close(os.open(f"{d}/job.out", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644))
    return (time.process_time() - started) / count * 1e6
