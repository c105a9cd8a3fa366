"""App launchers: the argv each builds, and real runs through the mpich wheel's mpiexec."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from harness.waiting import wait_until
from runner.launcher.spawners import Ended, SpawnerPool
from runner.platform import app_launchers
from runner.platform.app_launchers import LaunchSpec, UnsupportedJob
from runner.registry import DuplicateName, UnknownName

SPEC = LaunchSpec(
    argv=["./sim", "--in", "a b;c"],
    hosts=["n1", "n2"],
    ranks_per_node=2,
    threads_per_rank=3,
    gpus_per_rank=1,
    env={"OMP_NUM_THREADS": "3"},
)


def test_registry_lists_names_and_rejects_unknown() -> None:
    assert app_launchers.names() == ["local", "mpich", "openmpi", "srun"]
    with pytest.raises(UnknownName, match="known: local, mpich, openmpi, srun"):
        app_launchers.get("aprun")
    with pytest.raises(DuplicateName, match="app launcher 'mpich' registered twice"):
        app_launchers.register("mpich")(app_launchers.get("mpich"))


def test_mpich_command() -> None:
    cmd = app_launchers.get("mpich")(executable="mpiexec", extra_args=["-launcher", "fork"]).command(SPEC)
    assert cmd == [
        "mpiexec", "-n", "4", "-ppn", "2", "-hosts", "n1,n2", "-genv", "OMP_NUM_THREADS", "3",
        "-launcher", "fork", "./sim", "--in", "a b;c",
    ]  # fmt: skip


def test_mpich_defaults_to_the_wheel_beside_the_interpreter() -> None:
    launcher = app_launchers.get("mpich")()
    assert launcher.executable == str(Path(sys.executable).parent / "mpiexec")


def test_openmpi_command() -> None:
    cmd = app_launchers.get("openmpi")(executable="mpirun").command(SPEC)
    assert cmd == [
        "mpirun", "-n", "4", "--map-by", "ppr:2:node:PE=3", "--host", "n1:2,n2:2",
        "-x", "OMP_NUM_THREADS", "./sim", "--in", "a b;c",
    ]  # fmt: skip


def test_srun_command() -> None:
    cmd = app_launchers.get("srun")(executable="srun").command(SPEC)
    assert cmd[:1] == ["srun"] and cmd[-3:] == ["./sim", "--in", "a b;c"]
    assert cmd[cmd.index("--nodelist") + 1] == "n1,n2"
    assert cmd[cmd.index("--ntasks") + 1] == "4"
    assert cmd[cmd.index("--gpus-per-task") + 1] == "1"


def test_local_runs_one_process_only() -> None:
    local = app_launchers.get("local")()
    one = LaunchSpec(argv=["/bin/true"], hosts=["me"])
    assert local.command(one) == ["/bin/true"]
    with pytest.raises(UnsupportedJob, match="4 ranks"):
        local.command(SPEC)


def _run(cmd: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    # as tolu starts mpiexec (MPICHLauncher.ignore_sigpipe): SIGPIPE stays ignored
    return subprocess.run(cmd, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=60, check=False, restore_signals=False)


def test_hydra_sigpipe_race_is_harmless_with_sigpipe_ignored(tmp_path: Path) -> None:
    """The cause of the -13 (SIGPIPE) deaths of mpiexec, made certain instead of rare.

    strace delays each of mpiexec's polls by 0.3 s, as a busy scheduler may: the proxy and
    its one-shot job are gone before mpiexec forwards its stdin's EOF, and that write hits
    a closed socket. Started by a spawner with SIGPIPE at its default, mpiexec dies of it;
    started as tolu starts it (SIGPIPE ignored), it exits 0 — and the job itself still
    has SIGPIPE at its default (Hydra's proxy restores it)."""
    strace = shutil.which("strace")
    if strace is None:
        pytest.skip("strace is not installed (apt install strace)")
    mpich = app_launchers.get("mpich")()
    assert mpich.ignore_sigpipe
    job = ["sh", "-c", "grep SigIgn /proc/self/status"]
    cmd = mpich.command(LaunchSpec(argv=job, hosts=[socket.gethostname()]))
    slow = [strace, "-o", os.devnull, "-e", "trace=poll,ppoll", "-e", "inject=poll,ppoll:delay_enter=300000"]
    pool = SpawnerPool(1, {"PATH": os.environ["PATH"]}).start()
    try:
        for key, ignore in ((1, False), (2, True)):
            w = str(tmp_path / f"w{key}")
            pool.submit(key, [*slow, *cmd], workdir=w, out_path=w + "/job.out", ignore_sigpipe=ignore)
        ended: dict[int, Ended] = {}

        def collect() -> dict[int, Ended]:
            ended.update((e.key, e) for e in pool.wait(1.0).exits)
            return ended

        wait_until(collect, timeout=120, interval=0, what="both mpiexec runs", check=lambda e: len(e) == 2)
    finally:
        pool.close()
    assert ended[1].returncode == -signal.SIGPIPE, ended[1]
    assert ended[2].returncode == 0, ended[2]
    ignored = int((tmp_path / "w2" / "job.out").read_text().split()[-1], 16)
    assert not ignored & (1 << (signal.SIGPIPE - 1)), "the job must get SIGPIPE at its default"


def test_mpich_really_runs_ranks_on_fake_hosts() -> None:
    """Hydra's fork launcher runs the 'remote' hosts locally: 3 hosts x 2 ranks."""
    spec = LaunchSpec(
        argv=["sh", "-c", 'echo "$PMI_RANK $PMI_HOSTNAME $TOLU_X"'],
        hosts=["n1", "n2", "n3"],
        ranks_per_node=2,
        env={"TOLU_X": "a b;c"},
    )
    mpich = app_launchers.get("mpich")(extra_args=["-launcher", "fork"])
    out = _run(mpich.command(spec), mpich.process_env(spec, os.environ))
    assert out.returncode == 0, out.stderr
    lines = sorted(out.stdout.split("\n")[:-1])
    assert lines == [f"{r} n{r // 2 + 1} a b;c" for r in range(6)]


def test_mpich_reports_the_failing_rank_code() -> None:
    spec = LaunchSpec(argv=["sh", "-c", 'exit $((PMI_RANK + 3))'], hosts=["n1"], ranks_per_node=1)
    mpich = app_launchers.get("mpich")(extra_args=["-launcher", "fork"])
    assert _run(mpich.command(spec), dict(os.environ)).returncode == 3


def test_uneven_rank_counts_put_the_extra_rank_first() -> None:
    """Serial mode's layout: rank 0 (the server talker) shares the first node with a worker."""
    spec = LaunchSpec(
        argv=["sh", "-c", 'echo "$PMI_RANK $PMI_HOSTNAME"'], hosts=["n1", "n2"], rank_counts=[2, 1]
    )
    mpich = app_launchers.get("mpich")(extra_args=["-launcher", "fork"])
    cmd = mpich.command(spec)
    assert cmd[1:5] == ["-n", "3", "-hosts", "n1:2,n2:1"]
    out = _run(cmd, dict(os.environ))
    assert sorted(out.stdout.split("\n")[:-1]) == ["0 n1", "1 n1", "2 n2"]
    assert "--host" in (o := app_launchers.get("openmpi")(executable="mpirun").command(spec))
    assert o[o.index("--host") + 1] == "n1:2,n2:1"
