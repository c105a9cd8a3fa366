"""``tolu launcher``: run a site's jobs inside an allocation (or on a workstation)."""

from __future__ import annotations

import logging
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import click

from runner.cli._common import ToluCommand, fail, parse_pairs, print_json

if TYPE_CHECKING:
    from runner.cli.progress import Progress
    from runner.launcher.context import Context
    from runner.models import Site


@click.command(cls=ToluCommand)
@click.option(
    "--site", "site_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
    help="Site directory (holds settings.yml; job workdirs go to SITE/data).",
)
@click.option(
    "--mode", type=click.Choice(["mpi", "serial"]), default="mpi", show_default=True,
    help="mpi: one mpiexec per job, packed on nodes. serial: one mpi4py rank per node "
    "runs many small single-node tasks.",
)
@click.option("--batch-job-id", type=int, help="The BatchJob this launcher runs in (its filter tags apply).")
@click.option(
    "--wall-time-min", type=float,
    help="The launcher's own wall time: only jobs that fit the remaining time are taken, "
    "and running ones end as RUN_TIMEOUT when it is over. Default: no limit.",
)
@click.option(
    "--hostfile", type=click.Path(dir_okay=False, exists=True),
    help="Nodes to use, one per line (host or host:slots), instead of discovering them "
    "(Slurm, PBS, Cobalt, or this host alone).",
)
@click.option(
    "--max-idle-sec", type=float,
    help="Stop after this many seconds with nothing to run. Default: launcher.idle_timeout_sec "
    "from settings.yml (0 there: never).",
)
@click.option(
    "--wait-for-server", "server_wait_sec", type=click.FloatRange(min=0), metavar="SECONDS",
    help="How long to keep trying a server that cannot be reached or answers 5xx: at the start "
    "(a batch job that starts while the server restarts), and later while nothing runs here "
    "(with jobs in hand the launcher rides out any outage). Default: launcher.server_wait_sec "
    "from settings.yml (300); 0: give up at once.",
)
@click.option(
    "--tag", "tags", multiple=True, metavar="KEY=VALUE", help="Only run jobs with this tag (repeatable)."
)
@click.option(
    "--progress/--no-progress", default=None,
    help="A live line of jobs done/failed/running and jobs/s on stderr [default: on a terminal].",
)
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON on stdout at the end.")
def launcher(
    site_dir: Path,
    mode: str,
    batch_job_id: int | None,
    wall_time_min: float | None,
    hostfile: str | None,
    max_idle_sec: float | None,
    server_wait_sec: float | None,
    tags: tuple[str, ...],
    progress: bool | None,
    as_json: bool,
) -> None:
    """Run the site's jobs here until idle, out of time, or stopped (SIGTERM).

    Opens a session with the server (heartbeats; if this process dies its jobs come
    back as RESTART_READY once the session expires), acquires jobs that fit the free
    nodes, runs them, and reports their states in batches. Reports are kept in
    SITE/journal until the server takes them: the launcher rides out a server or
    database outage of any length and, if it dies, the next one sends them. Job output
    goes to SITE/data/<workdir>/job.out; the launcher's log to SITE/log/launcher-<pid>.log.
    At the end one line sums up what ran at the site meanwhile (done, errors, timeouts,
    jobs/s).

    Exit code 0 when it stopped idle (no work left), at its wall time, or when asked
    to (SIGTERM/SIGINT); otherwise 1 and one line says why (e.g. the server refuses
    its credentials, reports it could not send are left in SITE/journal).

    \b
      tolu launcher --site ./mysite --mode serial --max-idle-sec 10
      tolu launcher --site ./mysite --mode mpi --wall-time-min 60 --hostfile nodes.txt
    """
    from runner.cli.progress import Progress
    from runner.client.errors import ToluError
    from runner.launcher import leftovers
    from runner.launcher.context import Context
    from runner.launcher.logfile import setup_logging
    from runner.launcher.options import LauncherError, LauncherOptions
    from runner.launcher.spawners import SpawnerError
    from runner.platform.app_launchers import UnsupportedJob
    from runner.platform.nodes import DiscoveryError
    from runner.registry import UnknownName

    # every process this launcher starts carries it: if it is killed, its successor
    # finds what is left of them (runner/launcher/leftovers.py)
    leftovers.new_mark()
    opts = LauncherOptions(
        site_dir=site_dir,
        exit_file=str((site_dir / "log" / f"launcher-{os.getpid()}.exit").resolve()),
        mode=mode,
        batch_job_id=batch_job_id,
        wall_time_min=wall_time_min,
        hostfile=str(Path(hostfile).resolve()) if hostfile else None,
        max_idle_sec=max_idle_sec,
        tags=parse_pairs(tags, "--tag"),
        server_wait_sec=server_wait_sec,
    )
    try:
        # What the engine would find wrong first (the settings, the credentials, the server
        # down or not knowing the site), said here in one line in both modes.
        ctx = Context.load(opts)
        site = _check_server(ctx, ctx.server_wait_sec)
        live = sys.stderr.isatty() if progress is None else progress
        console = Progress(ctx.client, ctx.site_id, stream=sys.stderr, live=live)
        if mode == "mpi":
            from runner.launcher import mpi_mode

            # everything that can be wrong is found before the log file is made
            engine = mpi_mode.prepare(opts)
            log_path = setup_logging(site_dir)
            click.echo(f"launcher (mpi mode, pid {os.getpid()}): log {log_path}", err=True)
            console.start()
            code = engine.run()
        else:
            from runner.launcher import serial_start
            from runner.site import settings as site_settings

            settings = site_settings.load(site_dir)
            # what the nodes or the app launcher make impossible, said before anything starts
            cmd = serial_start.start_command(opts, settings.launcher)
            setup_logging(site_dir)
            click.echo(f"launcher (serial mode, pid {os.getpid()}): logs in {site_dir / 'log'}", err=True)
            console.start()
            code = serial_start.run(opts, settings.launcher, cmd)
    except (LauncherError, UnknownName, UnsupportedJob, DiscoveryError, SpawnerError) as exc:
        fail(str(exc))
    except ToluError as exc:  # the server refused or could not be reached at the start
        fail(f"launcher cannot start: {exc}")
    code, reason = _ending(Path(opts.exit_file), code)
    _summary(console, site.name, mode, code, as_json)
    ctx.client.close()
    if code != 0:
        fail(f"launcher stopped: {reason}", code=code)
    sys.exit(code)


def _ending(exit_file: Path, code: int) -> tuple[int, str]:
    """The launcher's exit code and why it stopped (one line, said when not 0)."""
    try:
        recorded, _, reason = exit_file.read_text().strip().partition("\t")
        exit_file.unlink()
        # the launcher's own verdict, written once everything was reported: what mpiexec
        # says of a rank killed after that (Hydra's clean-up at MPI_Finalize) changes nothing
        return int(recorded), reason
    except (OSError, ValueError):
        return code, f"the launcher exited with code {code} (see its log in the site's log/ folder)"


def _check_server(ctx: Context, wait_sec: float) -> Site:
    """The launcher's site as the server has it. A server that cannot be reached or
    answers 5xx is tried again for ``wait_sec`` (one line on stderr says so), then is
    one line here, without the retry warnings; one that refuses the credentials or
    does not know the site is one line at once."""
    from runner.client.errors import ServerError, TransportError

    client_log = logging.getLogger("runner.client")
    level = client_log.level
    client_log.setLevel(logging.ERROR)
    deadline = time.monotonic() + wait_sec
    pause = 1.0
    try:
        while True:
            try:
                return ctx.client.sites.get(ctx.site_id)
            except (TransportError, ServerError) as exc:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise
                if pause == 1.0:
                    click.echo(
                        f"launcher waits for the server: {exc}; trying again for up to {left:.0f} s "
                        "(--wait-for-server)",
                        err=True,
                    )
                time.sleep(min(pause, left))
                pause = min(2 * pause, 10.0)
    except BaseException:
        ctx.client.close()
        raise
    finally:
        client_log.setLevel(level)


def _summary(console: Progress, site: str, mode: str, code: int, as_json: bool) -> None:
    tally = console.stop()
    if tally is None:
        if as_json:
            print_json({"site": site, "mode": mode, "exit_code": code})
        else:
            click.echo(f"launcher ({mode} mode) at site {site}: no summary (the server does not answer)",
                       err=True)
        return
    if as_json:
        print_json({"site": site, "mode": mode, "exit_code": code, **tally.as_dict()})
    else:
        click.echo(tally.summary_line(site, mode), err=True)
