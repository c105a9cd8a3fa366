"""``tolu ci``: the integration pipeline and the server image (see docs/ci.md).

Registered into the ``tolu`` command through the ``tolu.commands`` entry-point group; needs the
``[harness]`` extra (the report's templates and plots), and ``[container]`` for the server image.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from runner.extras import require_extra


@click.group()
def ci() -> None:
    """For tolu's developers: CI runs the whole system end to end.

    \b
      tolu ci integration                          # server process, local scheduler
      tolu ci integration --server container --scheduler slurm
      tolu ci integration --fault job-fails        # prove a planted fault is caught
      tolu ci smoke http://127.0.0.1:8000          # the API smoke tests against any server
      tolu ci publish                              # the image to the registry on 127.0.0.1:5000, and back
      tolu ci template ./tolu-mysite --facility mysite --scheduler slurm --image IMAGE
    """
    # one line naming the extra instead of an ImportError once the run is over
    require_extra("harness", "tolu ci")


@ci.command(context_settings={"ignore_unknown_options": True})
@click.option("--server", default="process", show_default=True, help="process, container or a server URL")
@click.option("--scheduler", type=click.Choice(["local", "slurm"]), default="local", show_default=True)
@click.option(
    "--artifacts",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("artifacts"),
    show_default=True,
    help="runs write artifacts/<run-id>/",
)
@click.option("--run-id", default="", help="name of the run [integration-<time>-<random>]")
@click.option("--deadline", type=float, default=600.0, show_default=True, help="seconds to wait for jobs")
@click.option(
    "--fault",
    "faults",
    multiple=True,
    help="plant a fault on purpose: job-fails, empty-transfer, agent-error, kill-launcher (repeatable)",
)
@click.option("--venv", type=click.Path(file_okay=False, path_type=Path), help="reuse this venv")
@click.option("--database-url", default=None, help="server database [SQLite in its data dir]")
@click.option("--keep-work", is_flag=True, help="keep the temporary work directory")
@click.option(
    "--shared-deps",
    is_flag=True,
    help="fresh venv, but tolu's dependencies seen from this environment (fast)",
)
def integration(
    server: str,
    scheduler: str,
    artifacts: Path,
    run_id: str,
    deadline: float,
    faults: tuple[str, ...],
    venv: Path | None,
    database_url: str | None,
    keep_work: bool,
    shared_deps: bool,
) -> None:
    """Build, install, start a server and a site, run a mix of jobs, and check everything.

    Twelve steps, each printed with its duration; exits 1 at the first failed step, with a
    report in ARTIFACTS/<run-id>/report.html.
    """
    from harness.pipeline.faults import FAULTS
    from harness.pipeline.options import Options
    from harness.pipeline.pipeline import run_pipeline, sigterm_as_interrupt

    if server == "container":
        require_extra("container", "tolu ci integration --server container")
    unknown = [f for f in faults if f not in FAULTS]
    if unknown:
        raise click.BadParameter(
            f"unknown fault {unknown[0]!r}; known: {', '.join(FAULTS)}", param_hint="--fault"
        )
    options = Options(
        server=server,
        scheduler=scheduler,
        artifacts=artifacts,
        run_id=run_id,
        deadline_sec=deadline,
        faults=faults,
        venv=venv,
        database_url=database_url,
        keep_work=keep_work,
        shared_deps=shared_deps,
    )
    with sigterm_as_interrupt():
        result = run_pipeline(options)
    sys.exit(0 if result.ok else 1)


@ci.command()
@click.option(
    "--base-image", default=None, help="[TOLU_SERVER_BASE_IMAGE, python:3.11-slim or the local Debian image]"
)
@click.option("--force", is_flag=True, help="rebuild even if an image with the same digest exists")
def image(base_image: str | None, force: bool) -> None:
    """Build (or reuse) the server image from ci/server/ and print its tag.

    \b
      docker run -d -p 127.0.0.1:8000:8000 -e TOLU_MIGRATE=1 \\
         -v tolu-data:/data "$(tolu ci image)"
    """
    require_extra("container", "tolu ci image")
    from harness.container.errors import ContainerError
    from harness.container.image import build_server_image

    try:
        tag = build_server_image(base_image=base_image, force=force)
    except ContainerError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(tag)


@ci.command()
@click.argument("url")
@click.option(
    "--workflow",
    "names",
    multiple=True,
    help="run only this workflow of ci/smoke/ (repeatable): health, accounts, jobs, ...",
)
@click.option(
    "--json",
    "json_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="also write every step's result to this file",
)
def smoke(url: str, names: tuple[str, ...], json_path: Path | None) -> None:
    """Run the API smoke tests (stepci workflows of ci/smoke/) against the server at URL.

    Each workflow registers a fresh user and exercises accounts, sites, apps, jobs (bulk,
    DAG, idempotent resend, filters, pages, a forbidden transition), events, batch jobs,
    transfers, launcher sessions, tokens (refresh, revoke, read-only tokens, a device-code
    login), health and schema revision. Needs Node.js; stepci is
    installed into ci/smoke/node_modules on first use (npm ci). Exits 1 on any failure.

    \b
      tolu ci smoke http://127.0.0.1:8000
      tolu ci smoke https://tolu.example.org --workflow health --workflow jobs
    """
    import json

    from harness.deploy.smoke import SmokeError, run_smoke, workflow

    try:
        paths = [workflow(n) for n in names] or None
        result = run_smoke(url, paths)
    except SmokeError as exc:
        raise click.ClickException(str(exc)) from exc
    for name, steps in result.by_workflow().items():
        bad = [s for s in steps if not s.passed]
        click.echo(f"{'FAIL' if bad else 'ok  '} {name}: {len(steps) - len(bad)}/{len(steps)} steps")
        for s in bad:
            if not s.skipped:
                click.echo(
                    f"     {s.test} / {s.name}:\n" + "\n".join("       " + x for x in s.why().splitlines())
                )
    click.echo(result.summary())
    if json_path is not None:
        json_path.write_text(json.dumps(result.as_json(), indent=1, default=str) + "\n")
    sys.exit(0 if result.ok else 1)


@ci.command()
@click.option("--registry", default="127.0.0.1:5000", show_default=True, help="host[:port] of the registry")
@click.option("--image", default=None, help="the image to publish [build or reuse tolu-server:<digest>]")
@click.option("--source", default="", help="the project's URL, for org.opencontainers.image.source")
@click.option(
    "--check/--no-check", default=True, show_default=True, help="then remove, pull by digest and run it"
)
@click.option(
    "--report",
    type=click.Path(dir_okay=False, path_type=Path),
    help="write the digest, tags, labels, size, layers and packages as JSON here",
)
def publish(registry: str, image: str | None, source: str, check: bool, report: Path | None) -> None:
    """Push the server image, with OCI labels and version and commit tags, to a registry.

    The tested image gets the org.opencontainers.image.* labels (one FROM line, no layer
    changes) and two tags: <version> and sha-<commit>. With --check (the default) the local
    tags are then removed, the registry's manifest and blobs are checked, the image is
    pulled by digest and run until /health answers. Prints what the image contains.

    \b
      tolu ci publish                               # the registry of ci/provision/registry.sh
      tolu ci publish --registry ghcr.io/OWNER --no-check --source https://github.com/OWNER/tolu
    """
    require_extra("container", "tolu ci publish")
    import json
    import tempfile
    import time

    import requests

    from harness.container.engine import docker_client
    from harness.container.errors import ContainerError
    from harness.container.image import build_server_image
    from harness.container.server import ContainerServer
    from harness.deploy import registry as reg
    from harness.deploy.contents import image_contents

    client = docker_client()
    work = Path(tempfile.mkdtemp(prefix="tolu-publish-"))
    try:
        tested = image or build_server_image(client=client)
        t0 = time.monotonic()
        published = reg.publish(client, tested, registry, log=work / "publish.log", source=source)
        sec = published.seconds
        click.echo(
            f"pushed {published.repository}:{{{','.join(published.tags)}}} as {published.digest} "
            f"(label {sec['label']:.1f} s, push {sec['push']:.1f} s; {time.monotonic() - t0:.1f} s in all)"
        )
        contents = image_contents(client, f"{published.repository}:{published.tags[0]}")
        if check:
            t1 = time.monotonic()
            reference = reg.round_trip(client, published, registry)
            t2 = time.monotonic()
            click.echo(
                f"removed locally, registry holds {len(published.blobs)} blobs "
                f"({published.pushed_bytes / 1e6:.0f} MB), pulled {reference} ({t2 - t1:.1f} s)"
            )
            with ContainerServer(work / "server", image=reference) as server:
                health = requests.get(server.url + "/health", timeout=10).json()
            click.echo(f"ran it: /health {health} ({time.monotonic() - t2:.1f} s)")
            reg.remove_published(client, published)
    except ContainerError as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        client.close()
    click.echo(
        f"image {contents.size_bytes / 1e6:.0f} MB, {contents.os}, Python {contents.python}, "
        f"{len(contents.packages)} distributions"
    )
    for layer in contents.layers:
        click.echo(f"  {layer.size_bytes / 1e6:8.1f} MB  {layer.created_by}")
    click.echo("  " + ", ".join(f"{n} {v}" for n, v in contents.packages))
    if report is not None:
        doc = {
            "digest": published.digest,
            "tags": published.tags,
            "labels": published.labels,
            "contents": contents.as_json(),
        }
        report.write_text(json.dumps(doc, indent=1) + "\n")


@ci.command(context_settings={"max_content_width": 100})
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--facility", required=True, help="the facility's short name (lower-case, digits, '-'), e.g. polaris"
)
@click.option(
    "--scheduler",
    required=True,
    type=click.Choice(["local", "slurm", "pbs", "cobalt", "lsf"]),
    help="the batch scheduler of the facility's site",
)
@click.option(
    "--image",
    required=True,
    help="the tolu server image to build FROM, e.g. ghcr.io/OWNER/tolu/server:0.1.0 (tolu ci publish)",
)
@click.option(
    "--database",
    type=click.Choice(["postgresql", "sqlite"]),
    default="postgresql",
    show_default=True,
    help="PostgreSQL as a service of the compose file, or SQLite in the server's volume",
)
@click.option(
    "--postgres-image", default="postgres:16-bookworm", show_default=True, help="image of the db service"
)
@click.option("--port", type=int, default=8000, show_default=True, help="port the server is published on")
@click.option(
    "--bind", default="127.0.0.1", show_default=True, help="address the port is published on (0.0.0.0: all)"
)
@click.option("--server-url", default="", help="URL sites and users reach the server at [http://BIND:PORT]")
@click.option("--project", default="", help="the site's default allocation project/account")
@click.option("--queue", default="", help="the site's default queue/partition")
@click.option("--mpi-launcher", default="", help="mpich, openmpi, srun, local [srun for slurm, else mpich]")
@click.option("--cpus", type=int, default=0, show_default=True, help="cores per compute node (0: detect)")
@click.option("--gpus", type=int, default=0, show_default=True, help="GPUs per compute node")
def template(directory: Path, **options: object) -> None:
    """Render a deployment template for a facility into DIRECTORY (new or empty).

    \b
    DIRECTORY/
      README.md     how to start it, add users and connect the site, for this facility
      Dockerfile    FROM the tolu server image, with the facility's configuration
      compose.yaml  the server and PostgreSQL (or SQLite), volumes, the port
      server.env    secrets made now: token signing key, database URL (mode 0600)
      .env          the database password compose.yaml reads (mode 0600)
      site/         the site directory: settings.yml for the scheduler (validated), apps/

    \b
      tolu ci template ./tolu-polaris --facility polaris --scheduler pbs --queue debug \\
          --project MYPROJ --image ghcr.io/OWNER/tolu/server:0.1.0
      cd tolu-polaris && docker compose up -d --build && tolu ci smoke http://127.0.0.1:8000
    """
    from harness.deploy.template import Facility, TemplateError, command_line, render

    argv = sys.argv[sys.argv.index("template") + 1 :] if "template" in sys.argv else []
    try:
        facility = Facility(**options)  # type: ignore[arg-type]
        written = render(directory, facility, command=command_line(argv))
    except TemplateError as exc:
        raise click.ClickException(str(exc)) from exc
    for path in written:
        click.echo(f"wrote {path}")
    click.echo(f"next: cd {directory} && docker compose up -d --build   (see README.md)")
