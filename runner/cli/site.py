"""``tolu site``: make a site directory, run its agent, see its state."""

from __future__ import annotations

import socket
import sys
from pathlib import Path

import click

from runner import daemon
from runner.cli._common import (
    ToluGroup,
    ago,
    echo,
    fail,
    format_time,
    get_client,
    json_option,
    print_json,
    print_table,
    resolve_site,
)
from runner.cli.token import save_site_token
from runner.client import Client
from runner.client.errors import Conflict, TransportError
from runner.interpreter import module_command
from runner.site import directory
from runner.site.settings import SETTINGS_FILE, SiteSettings
from runner.site.settings import load as load_settings

#: seconds `tolu site start` waits for the agent to write its pid file.
AGENT_START_SEC = 20.0


@click.group(cls=ToluGroup)
def site() -> None:
    """Sites: a directory on an HPC login node and the agent that serves it.

    \b
      tolu site init ./mysite --scheduler slurm   # settings.yml, apps/, registered
      tolu site start ./mysite                    # the agent, in the background
      tolu site status ./mysite
      tolu site stop ./mysite
    """


def _client(settings_url: str = "") -> Client:
    client = get_client()
    if settings_url and settings_url.rstrip("/") != client.url:
        client = Client(settings_url, username=client.username, credential=client.credential, retries=2)
    return client


@site.command()
@click.argument("site_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--name", help="site name on the server [default: the directory name]")
@click.option(
    "--scheduler",
    type=click.Choice(directory.SCHEDULERS),
    default="local",
    show_default=True,
    help="the facility's batch scheduler",
)
@click.option("--url", default="", help="server URL [default: the one saved by `tolu login`]")
@json_option('print {"site", "name", "path", "url"} of the registered site')
def init(site_dir: Path, name: str | None, scheduler: str, url: str, as_json: bool) -> None:
    """Create SITE_DIR (commented settings.yml, apps/ with an example, data/, log/,
    batch/) and register the site with the server.

    Run it again on an existing site to register it if that failed the first time.
    """
    from runner.site.apps import EXAMPLE_APP, EXAMPLE_HOOKS

    site_dir = site_dir.resolve()
    settings_path = site_dir / SETTINGS_FILE
    directory.make_layout(site_dir)
    if not settings_path.exists():
        text = directory.render_settings(name=name or site_dir.name, scheduler=scheduler, server_url=url)
        settings_path.write_text(text)
        (site_dir / "apps" / "hello.yml").write_text(EXAMPLE_APP)
        (site_dir / "apps" / "_hooks_example.py").write_text(EXAMPLE_HOOKS)
        echo(f"wrote {settings_path}")
    settings = load_settings(site_dir)
    if settings.site_id is not None:
        if as_json:
            print_json({"site": settings.site_id, "name": settings.name, "path": str(site_dir), "url": None})
            return
        echo(f"site {settings.name!r} is registered (id {settings.site_id}); nothing to do")
        return
    client = _client(settings.server_url)
    site_name = settings.name or site_dir.name
    try:
        made = client.sites.create(
            name=site_name,
            path=str(site_dir),
            hostname=socket.gethostname(),
            settings_summary=settings.summary(),
        )
    except Conflict:
        same = [s for s in client.sites.filter(name=site_name) if s.path == str(site_dir)]
        if not same:
            fail(f"a site named {site_name!r} already exists elsewhere: choose another with --name")
        made = same[0]
    except TransportError as exc:
        fail(f"{exc}; the directory is ready, run `tolu site init {site_dir}` again to register it")
    directory.set_site_id(site_dir, made.id)
    if as_json:
        print_json({"site": made.id, "name": made.name, "path": str(site_dir), "url": client.url})
        return
    echo(f"registered site {made.name!r} (id {made.id}) at {client.url}")
    # The agent and launchers act with a token that reaches this site only, not your login.
    saved = save_site_token(client, made, site_dir)
    echo(f"site token saved to {saved} (the agent's and launchers' credential)")
    echo(f"next: tolu site start {site_dir}")


@site.command(name="ls")
@json_option()
def ls(as_json: bool) -> None:
    """List your sites."""
    client = get_client()
    if as_json:
        print_json([s.model_dump(mode="json") for s in client.sites.filter()])
        return
    rows = [
        (
            s.id,
            s.name,
            s.hostname,
            s.path,
            s.settings_summary.get("scheduler", ""),
            ago(s.last_heartbeat),
        )
        for s in client.sites.filter()
    ]
    print_table(["id", "name", "host", "path", "scheduler", "agent heartbeat"], rows)


@site.command(name="rm")
@click.argument("site_ref", metavar="SITE")
@click.option("-y", "--yes", is_flag=True, help="do not ask for confirmation")
@json_option('print {"site", "apps", "jobs"} of what was removed')
def rm(site_ref: str, yes: bool, as_json: bool) -> None:
    """Remove a site from the server, with its apps, jobs and batch jobs (asks first).

    SITE is its directory, id or name. The directory itself is left alone.

    \b
    Example:
      tolu site rm old-site --yes
    """
    client = get_client()
    found = resolve_site(client, site_ref)
    apps = client.apps.page(site_id=found.id, limit=1).count
    jobs = client.jobs.count(site_id=found.id)
    if not yes:
        click.confirm(
            f"Remove site {found.name!r} (id {found.id}) with its {apps} app(s) and {jobs} job(s)?",
            abort=True,
            err=True,
        )
    client.sites.delete(found.id)
    if as_json:
        print_json({"site": found.id, "apps": apps, "jobs": jobs})
        return
    echo(f"Removed site {found.name} (id {found.id}): {apps} app(s), {jobs} job(s)")


def _load_registered(site_dir: Path) -> SiteSettings:
    settings = load_settings(site_dir)
    if settings.site_id is None:
        fail(f"{site_dir / SETTINGS_FILE}: site_id is not set; run `tolu site init {site_dir}` first")
    return settings


@site.command()
@click.argument("site_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--foreground", is_flag=True, help="run in this terminal (log also to stderr)")
@json_option('print {"pid", "log", "services", "apps"} once the agent runs')
def start(site_dir: Path, foreground: bool, as_json: bool) -> None:
    """Validate the settings, sync SITE_DIR/apps with the server, and start the agent.

    The agent runs in the background (pid in SITE_DIR/log/agent.pid, log in
    SITE_DIR/log/agent.log) unless --foreground.
    """
    from runner.site.agent import Agent, enabled_services, main, make_context
    from runner.site.apps import sync_apps

    site_dir = site_dir.resolve()
    settings = _load_registered(site_dir)
    pid = directory.running_pid(site_dir)
    if pid is not None:
        fail(f"the agent of {site_dir} is already running (pid {pid}); `tolu site stop {site_dir}` first")
    try:
        names = enabled_services(settings)
    except LookupError as exc:
        fail(f"{site_dir / SETTINGS_FILE}: services: {exc}")
    ctx = make_context(site_dir, settings)
    synced = sync_apps(ctx)
    echo(
        f"apps: {len(synced)} synced ({len(synced.created)} new, {len(synced.updated)} updated); "
        f"services: {', '.join(names)}"
    )
    del Agent  # imported to fail here, before daemonizing, if the agent cannot load
    if foreground:
        sys.exit(main([str(site_dir), "--foreground", "--pid-file"]))
    pid_file = directory.pid_file(site_dir)
    try:
        proc = daemon.start(
            [*module_command("runner.site.agent"), str(site_dir), "--pid-file"],
            log_path=site_dir / "log" / "agent.stdout",
            ready=lambda proc: pid_file.running() == proc.pid,  # the agent writes it once it runs
            timeout=AGENT_START_SEC,
            name="the agent",
        )
    except daemon.StartError as exc:
        if exc.exit_code is None:
            fail(f"the agent did not write {pid_file.path} within {AGENT_START_SEC:g} s; stopped it")
        last = exc.log_tail.strip().splitlines()[-1:]
        fail(f"the agent exited at once (status {exc.exit_code}): {' '.join(last)}")
    if as_json:
        log = str(directory.log_path(site_dir))
        print_json({"pid": proc.pid, "log": log, "services": names, "apps": [a.name for a in synced]})
        return
    echo(f"agent started (pid {proc.pid}); log: {directory.log_path(site_dir)}")


@site.command()
@click.argument("site_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--timeout", default=60.0, show_default=True, help="seconds to wait before SIGKILL")
@json_option('print {"pid", "stopped", "killed"}')
def stop(site_dir: Path, timeout: float, as_json: bool) -> None:
    """Stop the agent of SITE_DIR (SIGTERM to the pid in log/agent.pid, SIGKILL after --timeout)."""
    site_dir = site_dir.resolve()
    pid_file = directory.pid_file(site_dir)
    proc = pid_file.process()
    if proc is None:
        pid_file.remove()
        if as_json:
            print_json({"pid": None, "stopped": False, "killed": False})
            return
        echo(f"the agent of {site_dir} is not running")
        return
    stopped = daemon.stop(proc, timeout=timeout)
    pid_file.remove(proc.pid)  # the agent removes it as it exits; not if it was killed
    if as_json:
        print_json({"pid": proc.pid, "stopped": True, "killed": stopped.killed})
        return
    if stopped.killed:
        echo(f"agent killed after {timeout:g} s (pid {proc.pid})")
    else:
        echo(f"agent stopped (pid {proc.pid})")


@site.command()
@click.argument("site_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@json_option()
def status(site_dir: Path, as_json: bool) -> None:
    """Is the agent running; the site's last heartbeat; its jobs per state."""
    site_dir = site_dir.resolve()
    settings = _load_registered(site_dir)
    pid = directory.running_pid(site_dir)
    if as_json:
        assert settings.site_id is not None
        remote_client = _client(settings.server_url)
        print_json(
            {
                "site": settings.site_id,
                "name": settings.name,
                "path": str(site_dir),
                "agent_pid": pid,
                "last_heartbeat": remote_client.sites.get(settings.site_id).last_heartbeat,
                "jobs": {str(s): n for s, n in remote_client.jobs.counts(site_id=settings.site_id).items()},
            }
        )
        return
    echo(f"site: {settings.name} (id {settings.site_id}) at {site_dir}")
    state = f"running (pid {pid})" if pid else "not running"
    echo(f"agent: {state}; log: {directory.log_path(site_dir)}")
    assert settings.site_id is not None
    client = _client(settings.server_url)
    remote = client.sites.get(settings.site_id)
    echo(f"last heartbeat: {format_time(remote.last_heartbeat)}")
    counts = client.jobs.counts(site_id=settings.site_id)
    rows = [(str(state), n) for state, n in counts.items() if n]
    if rows:
        print_table(["state", "jobs"], rows)
    else:
        echo("no jobs")
