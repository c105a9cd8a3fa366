"""``tolu dag``: DAG prototypes — define once (YAML), show, run many instances in one
request, follow and kill a run or one instance (docs/dags.md)."""

from __future__ import annotations

import csv
import itertools
import json
from pathlib import Path
from typing import Any

import click
import yaml

from runner.cli._common import (
    ToluGroup,
    echo,
    fail,
    format_tags,
    format_time,
    get_client,
    json_option,
    noun,
    parse_pairs,
    parse_value,
    print_json,
    print_table,
    resolve_site,
    show_or_watch,
    site_option,
    watch_options,
)
from runner.client import Client, NotFound
from runner.models import DAG_INSTANCE_TAG, DAG_RUN_TAG, Dag, DagRunStatus, describe_parameters
from runner.states import JobState


@click.group(cls=ToluGroup)
def dag() -> None:
    """DAG prototypes: define a DAG once, run it many times.

    A DAG is a parameterised graph of app runs, stored (and versioned) on the server.

    \b
    Examples:
      tolu dag define pipeline.yml --site ./mysite     # a new version if it changed
      tolu dag show pipeline                           # drawn in the terminal
      tolu dag run pipeline --param sample=a           # one instance
      tolu dag run pipeline --sweep sample=a,b,c --sweep seed=1,2   # six instances
      tolu dag run pipeline --instances samples.csv    # one instance per row
      tolu dag status 7 --watch                        # a run as a unit
      tolu dag kill 7 --instance 3
    """


def _find(client: Client, ref: str) -> Dag:
    """A DAG given as NAME, NAME:VERSION or its id."""
    if ref.isdigit():
        return client.dags.get(int(ref))
    name, _, version = ref.partition(":")
    if version and not version.isdigit():
        fail(f"{ref!r}: give NAME, NAME:VERSION or an id")
    return client.dags.latest(name, int(version) if version else None)


@dag.command()
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@site_option()
@json_option("print the stored DAG as JSON")
def define(file: Path, site: str | None, as_json: bool) -> None:
    """Store the DAG of FILE (YAML): a new version of its name if it changed.

    The site (whose apps the nodes run) is --site, else the file's `site:`.
    """
    client = get_client()
    site_id = resolve_site(client, site).id if site else None
    spec = client.dags.load(file, site_id=site_id)
    try:
        before: Dag | None = client.dags.latest(spec.name)
    except NotFound:
        before = None
    stored = client.dags.define(spec)
    if as_json:
        print_json(stored.model_dump(mode="json"))
        return
    if before is not None and before.id == stored.id:
        echo(f"DAG {stored.name} version {stored.version} is unchanged (id {stored.id})")
    else:
        echo(
            f"Defined DAG {stored.name} version {stored.version} (id {stored.id}): {len(stored.nodes)} nodes"
        )


@dag.command("ls")
@click.option("--all-versions", is_flag=True, help="every version, not only the latest of each name")
@json_option()
def ls(all_versions: bool, as_json: bool) -> None:
    """List your DAGs (the latest version of each, newest first)."""
    client = get_client()
    found = client.dags.filter(all_versions=all_versions)
    if as_json:
        print_json([d.model_dump(mode="json") for d in found])
        return
    print_table(
        ("id", "name", "version", "site", "nodes", "parameters", "created"),
        [
            (
                d.id,
                d.name,
                d.version,
                d.site_id,
                len(d.nodes),
                describe_parameters(d.parameters),
                format_time(d.created_at),
            )
            for d in found
        ],
    )


def draw(found: Dag) -> str:
    """The DAG by layers, top to bottom; each node with its app and the parents it waits for."""
    lines = [
        f"DAG {found.name} version {found.version} (id {found.id}, site {found.site_id}): "
        f"{len(found.nodes)} nodes in {len(found.layers())} layers",
        f"parameters: {describe_parameters(found.parameters)}",
        "",
    ]
    layers = found.layers()
    for depth, layer in enumerate(layers):
        boxes = []
        for node in layer:
            box = f"[{node.name}: {node.app}]"
            if node.parents:
                box += " ◀ " + ", ".join(node.parents)
            boxes.append(box)
        lines.append("    ".join(boxes))
        if depth < len(layers) - 1:
            lines += ["      │", "      ▼"]
    return "\n".join(lines)


@dag.command()
@click.argument("ref", metavar="DAG")
@json_option()
def show(ref: str, as_json: bool) -> None:
    """Draw a DAG (NAME, NAME:VERSION or id): its layers, apps and dependencies."""
    found = _find(get_client(), ref)
    if as_json:
        print_json(found.model_dump(mode="json"))
        return
    echo(draw(found))
    for node in found.nodes:
        if node.parameters:
            echo(f"  {node.name}: " + ", ".join(f"{k}={v!r}" for k, v in node.parameters.items()))


def _instances_file(path: Path) -> list[dict[str, Any]]:
    """Instances from a CSV (header: parameter names), a JSON or YAML list of mappings."""
    try:
        if path.suffix == ".csv":
            with path.open(newline="") as fh:
                return [{k: parse_value(v) for k, v in row.items()} for row in csv.DictReader(fh)]
        raw = json.loads(path.read_text()) if path.suffix == ".json" else yaml.safe_load(path.read_text())
    except (ValueError, yaml.YAMLError, csv.Error) as exc:
        fail(f"{path}: {' '.join(str(exc).split())}")
    if not isinstance(raw, list) or not all(isinstance(r, dict) for r in raw):
        fail(f"{path}: expected a list of mappings (one per instance: parameter name -> value)")
    return raw


def _sweep(values: tuple[str, ...]) -> list[dict[str, Any]]:
    axes = []
    for item in values:
        key, eq, listed = item.partition("=")
        if not eq or not key or not listed:
            fail(f"--sweep {item!r}: expected NAME=V1,V2,...")
        axes.append([(key, parse_value(v)) for v in listed.split(",")])
    return [dict(combo) for combo in itertools.product(*axes)]


@dag.command()
@click.argument("ref", metavar="DAG")
@click.option("--param", "params", multiple=True, metavar="K=V", help="a parameter of every instance")
@click.option(
    "--sweep",
    "sweeps",
    multiple=True,
    metavar="K=V1,V2",
    help="one instance per value (repeatable: all combinations)",
)
@click.option(
    "--instances",
    "instances_file",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="one instance per row of a CSV, or per item of a JSON/YAML list",
)
@click.option(
    "-n", "--count", default=1, show_default=True, type=click.IntRange(1), help="copies of each instance"
)
@click.option("--tag", "tags", multiple=True, metavar="K=V", help="a tag on every job of the run")
@site_option()
@json_option("print the run as JSON")
def run(
    ref: str,
    params: tuple[str, ...],
    sweeps: tuple[str, ...],
    instances_file: Path | None,
    count: int,
    tags: tuple[str, ...],
    site: str | None,
    as_json: bool,
) -> None:
    """Run a DAG: every instance's jobs are created in one request, all or nothing.

    Each instance's parameters are --param, over each row of --instances, over each
    combination of --sweep values; -n repeats them. The jobs are tagged dag_run=RUN and
    dag_instance=I (and dag_node=NODE): `tolu dag status RUN`, `tolu job ls --tag dag_run=RUN`.
    With --site, the apps of the same names at another site run them.
    """
    client = get_client()
    found = _find(client, ref)
    base = parse_pairs(params, "--param", typed=True)
    rows = _instances_file(instances_file) if instances_file else [{}]
    combos = _sweep(sweeps) if sweeps else [{}]
    instances = [{**base, **row, **combo} for row in rows for combo in combos] * count
    site_id = resolve_site(client, site).id if site else None
    made = client.dags.run(found, instances, tags=parse_pairs(tags, "--tag"), site_id=site_id)
    if as_json:
        print_json(made.model_dump(mode="json"))
        return
    echo(
        f"Run {made.id} of DAG {made.dag_name} version {made.version}: {noun(made.instances, 'instance')}, "
        f"{noun(made.jobs, 'job')} (tags {DAG_RUN_TAG}={made.id}, {DAG_INSTANCE_TAG}=0..{made.instances - 1})"
    )


def _status_text(now: DagRunStatus) -> str:
    r = now.run
    lines = [
        f"run {r.id}: DAG {r.dag_name} version {r.version}, {noun(r.instances, 'instance')}, "
        f"{r.jobs} jobs at site {r.site_id}, created {format_time(r.created_at)}"
        + (f", tags {format_tags(r.tags)}" if r.tags else ""),
        "instances: " + ", ".join(f"{n} {s.value}" for s, n in sorted(now.instances.items())),
        "jobs:      " + ", ".join(f"{s.value} {now.jobs[s]}" for s in JobState if now.jobs.get(s)),
    ]
    for inst in now.detail or []:
        states = ", ".join(f"{s.value} {n}" for s, n in sorted(inst.jobs.items()))
        params = ", ".join(f"{k}={v!r}" for k, v in inst.parameters.items())
        lines.append(f"  {inst.index:>6}  {inst.state.value:<8}  {states}  ({params})")
    return "\n".join(lines)


@dag.command()
@click.argument("run_id", type=int, metavar="RUN")
@click.option("--instance", type=click.IntRange(0), help="only this instance (its jobs per state)")
@click.option("--detail", is_flag=True, help="list every instance")
@json_option()
@watch_options("the status")
def status(
    run_id: int, instance: int | None, detail: bool, as_json: bool, watch: bool, interval: float
) -> None:
    """A run as a unit: instances finished/running/waiting/failed/killed, jobs per state."""
    client = get_client()

    def now() -> DagRunStatus:
        return client.dags.status(run_id, detail=detail, instance=instance)

    if as_json:
        print_json(now().model_dump(mode="json"))
        return
    show_or_watch(lambda: _status_text(now()), watch, interval)


@dag.command()
@click.argument("run_id", type=int, metavar="RUN")
@click.option("--instance", type=click.IntRange(0), help="only this instance")
@click.option("-y", "--yes", is_flag=True, help="do not ask for confirmation")
@json_option('print {"killed": N}')
def kill(run_id: int, instance: int | None, yes: bool, as_json: bool) -> None:
    """Kill every unfinished job of a run, or of one of its instances."""
    client = get_client()
    what = (
        f"instance {instance} of run {run_id}" if instance is not None else f"every instance of run {run_id}"
    )
    if not yes and not as_json:
        click.confirm(f"Kill the unfinished jobs of {what}?", abort=True, err=True)
    killed = client.dags.kill(run_id, instance=instance)
    if as_json:
        print_json({"killed": killed})
        return
    echo(f"Killed {killed} job{'' if killed == 1 else 's'} of {what}")


@dag.command()
@click.argument("name", required=False)
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1), help="newest runs shown")
@json_option()
def runs(name: str | None, limit: int, as_json: bool) -> None:
    """List DAG runs, newest first (of the DAG NAME, every version)."""
    client = get_client()
    found = client.dags.runs(name=name, limit=limit)
    if as_json:
        print_json([r.model_dump(mode="json") for r in found])
        return
    print_table(
        ("run", "dag", "version", "site", "instances", "jobs", "tags", "created"),
        [
            (
                r.id,
                r.dag_name,
                r.version,
                r.site_id,
                r.instances,
                r.jobs,
                format_tags(r.tags),
                format_time(r.created_at),
            )
            for r in found
        ],
    )
