"""Start serial mode: the ``mpiexec`` line that runs ``runner.launcher.serial_mode``.

One worker rank per node plus rank 0 (the one that talks to the server) on the
first node, started by the site's app launcher like any job's, so ``srun`` or
``mpirun`` sites work the same way; a single node gets one rank that does both,
started directly, without MPI.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import time
from pathlib import Path
from types import FrameType

from runner.interpreter import module_command
from runner.launcher.deathsig import preexec_die_with_parent, prepare
from runner.launcher.options import LauncherOptions
from runner.launcher.serial_mode import NO_MPI, options_json, rank0_file, rank0_pid
from runner.platform import app_launchers, nodes
from runner.platform.app_launchers import LaunchSpec
from runner.roles import Role, announce
from runner.site.settings import LauncherSettings

log = logging.getLogger("runner.launcher.serial")


def command(opts: LauncherOptions, settings: LauncherSettings, node_list: list[nodes.Node]) -> list[str]:
    argv = [*module_command("runner.launcher.serial_mode", python=opts.python), options_json(opts)]
    launcher_class = app_launchers.get(settings.mpi_launcher)  # a name it does not know is an error anyway
    if len(node_list) == 1:
        # one rank does it all and talks to no other: no MPI launcher, no MPI library (its
        # ~15 MiB and MPI_Init's ~65 ms), on the node the launcher runs on
        return [*argv, NO_MPI]
    if settings.mpi_launcher == "local":
        raise app_launchers.UnsupportedJob(
            "serial mode on several nodes needs an MPI launcher (launcher.mpi_launcher)"
        )
    hosts = [n.hostname for n in node_list]
    counts = [2] + [1] * (len(hosts) - 1)
    spec = LaunchSpec(argv=argv, hosts=hosts, rank_counts=counts)
    launcher = launcher_class(executable=settings.mpiexec, extra_args=settings.mpi_args)
    return launcher.command(spec)


def start_command(opts: LauncherOptions, settings: LauncherSettings) -> list[str]:
    """The start command; what is wrong with the nodes or the app launcher raises here
    (DiscoveryError, UnknownName, UnsupportedJob), before anything is started or logged."""
    return command(opts, settings, nodes.discover(settings, hostfile=opts.hostfile))


def run(opts: LauncherOptions, settings: LauncherSettings, cmd: list[str] | None = None) -> int:
    """Run serial mode to its end; SIGTERM/SIGINT are passed on to ``mpiexec``."""
    announce(Role.SUPERVISOR)  # only waits on mpiexec: the ranks do the work
    cmd = cmd if cmd is not None else start_command(opts, settings)
    log.info("serial mode: %s", subprocess.list2cmdline(cmd[:8]) + " ...")
    prepare()
    # mpiexec gets SIGTERM if this process dies, and passes it on to every rank.
    # Its own session, so a terminal's Ctrl-C reaches it once, through us, as SIGTERM
    # (a second SIGINT would make Hydra abort without the ranks cleaning up).
    proc = subprocess.Popen(
        cmd, preexec_fn=preexec_die_with_parent, start_new_session=True, env=dict(os.environ)
    )

    def forward(signum: int, frame: FrameType | None) -> None:
        # rank 0 stops the other ranks in order (MPI messages), then mpiexec ends by
        # itself; Hydra's own forwarding races proxies that exit and can kill rank 0
        # while it sends its last reports. Through mpiexec only where rank 0 is elsewhere.
        rank0 = rank0_pid(opts)
        if rank0 is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(rank0, signal.SIGTERM)
                return
        proc.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    try:
        return wait_mpiexec(proc, Path(opts.exit_file) if opts.exit_file else None)
    finally:
        rank0 = rank0_file(opts)
        if rank0 is not None:
            rank0.unlink(missing_ok=True)


#: how long ``mpiexec`` may outlive rank 0's end (its exit file) before it is ended.
AFTER_RANK0_SEC = 10.0


def wait_mpiexec(proc: subprocess.Popen[bytes], exit_file: Path | None) -> int:
    """``proc.wait()``, except that ``mpiexec`` is ended once rank 0 has ended and it
    has not followed within AFTER_RANK0_SEC: Hydra forwarding a SIGTERM to a proxy that
    had just exited fails ("unable to send signal downstream"), and then waits for the
    other proxy forever (1 in ~10 SIGTERMs on a launcher a second old, in tests)."""
    ended_at: float | None = None
    while True:
        try:
            return proc.wait(timeout=0.5)
        except subprocess.TimeoutExpired:
            pass
        if exit_file is None or not exit_file.exists():
            continue
        ended_at = ended_at or time.monotonic()
        if time.monotonic() - ended_at >= AFTER_RANK0_SEC:
            log.warning("mpiexec still runs %g s after rank 0 ended: ending it", AFTER_RANK0_SEC)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)  # its own session: mpiexec, proxies, ranks
            return proc.wait()
