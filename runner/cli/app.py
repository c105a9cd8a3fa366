"""``tolu app``: sync a site's app definitions to the server, list them."""

from __future__ import annotations

from pathlib import Path

import click

from runner.apps import load_apps
from runner.cli._common import (
    ToluGroup,
    echo,
    fail,
    get_client,
    json_option,
    print_json,
    print_table,
    resolve_app,
    resolve_site,
    site_dir_id,
    site_option,
)


@click.group(cls=ToluGroup)
def app() -> None:
    """Apps: what jobs run. Define them in SITE/apps/ (YAML or Python), then sync.

    \b
    Examples:
      tolu app sync --site ./mysite
      tolu app ls
      tolu app rm old-app --site ./mysite
    """


@app.command()
@click.option(
    "--site",
    "site",
    envvar="TOLU_SITE",
    default=".",
    show_default="$TOLU_SITE or the current directory",
    type=click.Path(file_okay=False),
    help="the site directory (holds settings.yml and apps/)",
)
@click.option("--prune", is_flag=True, help="also delete apps on the server that are no longer defined")
@click.option("--dry-run", is_flag=True, help="load and check the definitions, change nothing")
@json_option('print {"created", "updated", "unchanged", "deleted"}: app names')
def sync(site: str, prune: bool, dry_run: bool, as_json: bool) -> None:
    """Create or update the server's apps from SITE/apps/*.yml and *.py.

    Apps are matched by name; unchanged ones are left alone. Prints what changed.

    \b
    Example:
      tolu app sync --site ./mysite
      + created hello
      ~ updated simulate
      = unchanged square
    """
    site_dir = Path(site)
    if not (site_dir / "settings.yml").exists():
        fail(f"{site_dir} is not a site directory (no settings.yml): create one with `tolu site init DIR`")
    apps = load_apps(site_dir / "apps")
    if dry_run:
        for a in apps:
            echo(f"  ok {a.name} ({a.source})")
        echo(f"{len(apps)} app definitions are valid")
        return
    site_id = site_dir_id(site_dir)
    client = get_client()
    result = client.apps.sync(site_id, [a.to_create(site_id) for a in apps], prune=prune)
    if as_json:
        kinds = ("created", "updated", "unchanged", "deleted")
        print_json({k: [a.name for a in getattr(result, k)] for k in kinds})
        return
    for made in result.created:
        echo(f"+ created {made.name}")
    for made in result.updated:
        echo(f"~ updated {made.name}")
    for made in result.unchanged:
        echo(f"= unchanged {made.name}")
    for made in result.deleted:
        echo(f"- deleted {made.name}")
    echo(
        f"{len(result)} apps at site {site_id}: {len(result.created)} created, "
        f"{len(result.updated)} updated, {len(result.unchanged)} unchanged"
        + (f", {len(result.deleted)} deleted" if prune else "")
    )


@app.command("ls")
@site_option()
@click.option("--json", "as_json", is_flag=True, help="print JSON instead of a table")
def ls(site: str | None, as_json: bool) -> None:
    """List your apps (of one site with --site).

    \b
    Example:
      tolu app ls --site ./mysite
    """
    client = get_client()
    site_obj = resolve_site(client, site) if site else None
    apps = client.apps.filter(site_id=site_obj.id if site_obj else None)
    if as_json:
        print_json([a.model_dump(mode="json", exclude={"serialized_function"}) for a in apps])
        return
    rows = []
    for a in apps:
        params = a.parameter_list()
        what = a.command_template if a.kind == "shell" else "(python function)"
        rows.append((a.id, a.site_id, a.name, a.kind, what, params, ",".join(a.hooks)))
    print_table(("id", "site", "name", "kind", "command", "parameters", "hooks"), rows)


@app.command("rm")
@click.argument("app_ref", metavar="APP")
@site_option()
@click.option("-y", "--yes", is_flag=True, help="do not ask for confirmation")
@json_option('print {"app", "jobs"} of what was removed')
def rm(app_ref: str, site: str | None, yes: bool, as_json: bool) -> None:
    """Remove an app (by name or id) and its jobs from the server (asks first).

    Its definition file in SITE/apps stays: the next `tolu app sync` would create it
    again (`tolu app sync --prune` removes apps whose files are gone).

    \b
    Example:
      tolu app rm hello --site ./mysite
    """
    client = get_client()
    site_obj = resolve_site(client, site) if site else None
    found = resolve_app(client, app_ref, site_obj)
    jobs = client.jobs.count(app_id=found.id)
    if not yes:
        click.confirm(
            f"Remove app {found.name!r} (id {found.id}) and its {jobs} job(s)?", abort=True, err=True
        )
    client.apps.delete(found.id)
    if as_json:
        print_json({"app": found.id, "jobs": jobs})
        return
    echo(f"Removed app {found.name} (id {found.id}) and {jobs} job(s)")
