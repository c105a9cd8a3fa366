"""Step 5: the apps (synced with ``tolu app sync``) and a realistic mix of jobs.

Single-rank and 2-rank MPI jobs, a 4-job DAG, 8 packed tasks, a job meant to fail, 3 jobs with
stage-in and stage-out, and the planted faults' jobs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import yaml

from harness.pipeline import faults
from harness.pipeline.step import StepFailed
from runner.models import JobCreate, Resources, TransferDirection, TransferItemCreate

if TYPE_CHECKING:
    from harness.pipeline.context import Run

#: `hello` comes with `tolu site init`
NEEDED_APPS = {"hello", "ranks", "exitcode", "sleeper", "upper"}
UPPER_INPUT = "tolu integration input\nline two\n"
TRANSFER_JOBS = 3
PACKED_TASKS = 8


def _write_apps(run: Run) -> set[str]:
    """The pipeline's apps in the site's apps/; the names of every app it needs."""
    apps = run.site_dir / "apps"
    py = run.venv / "bin" / "python"
    upper = "import pathlib as p; p.Path('out.txt').write_text(p.Path('in.txt').read_text().upper())"
    defs: dict[str, dict[str, Any]] = {
        "ranks": {"command_template": "hostname", "resources": {"num_nodes": 1, "ranks_per_node": 2}},
        "exitcode": {"command_template": "sh -c 'exit {code}'", "parameters": {"code": 0}},
        "sleeper": {"command_template": "sleep {seconds}", "parameters": {"seconds": 0.2}},
        "upper": {"command_template": f'{py} -c "{upper}"'},
    }
    for name, spec in defs.items():
        text = yaml.safe_dump({"name": name, "description": f"integration app {name}", **spec})
        (apps / f"{name}.yml").write_text(text)
    return NEEDED_APPS | faults.write_apps(run, apps)


def _transfer_items(run: Run, index: int) -> list[TransferItemCreate]:
    source = run.inputs / f"in-{index}.txt"
    source.write_text(f"{UPPER_INPUT}job {index}\n")
    # the misrouted location's root is elsewhere: the file does not arrive at this destination
    location = "misrouted" if faults.misroutes(run, index) else "results"
    return [
        TransferItemCreate(direction=TransferDirection.IN, source=f"local:{source}", destination="in.txt"),
        TransferItemCreate(
            direction=TransferDirection.OUT,
            source="out.txt",
            destination=f"{location}:{run.results / f'out-{index}.txt'}",
        ),
    ]


def populate(run: Run) -> str:
    needed = _write_apps(run)
    run.tolu("app", "sync", "--site", str(run.site_dir))
    client = run.client()
    apps = {a.name: a.id for a in client.apps.filter(site_id=run.site_id)}
    missing = needed - set(apps)
    if missing:
        raise StepFailed(f"apps not on the server after sync: {', '.join(sorted(missing))}")
    run.inputs.mkdir(parents=True, exist_ok=True)
    run.results.mkdir(parents=True, exist_ok=True)
    jobs: list[JobCreate] = []

    def add(app: str, **kw: Any) -> None:
        tags = {"run": run.run_id, **kw.pop("tags", {})}
        jobs.append(JobCreate(app_id=apps[app], tags=tags, **kw))

    add("hello", parameters={"name": "single-rank"}, tags={"kind": "mpi-1"})
    add("ranks", tags={"kind": "mpi-2"})
    add("hello", key="dag-a", parameters={"name": "dag-a"}, tags={"kind": "dag"})
    add("hello", key="dag-b", parents=["dag-a"], parameters={"name": "dag-b"}, tags={"kind": "dag"})
    add("hello", key="dag-c", parents=["dag-a"], parameters={"name": "dag-c"}, tags={"kind": "dag"})
    add("hello", key="dag-d", parents=["dag-b", "dag-c"], parameters={"name": "dag-d"}, tags={"kind": "dag"})
    packed = Resources(num_nodes=1, ranks_per_node=1, node_packing_count=4)
    for _ in range(PACKED_TASKS):
        add("sleeper", resources=packed, tags={"kind": "packed"})
    add("exitcode", parameters={"code": 3}, retry_limit=0, tags={"kind": "fails", "expect": "fail"})
    for i in range(TRANSFER_JOBS):
        add("upper", transfers=_transfer_items(run, i), tags={"kind": "transfer", "index": str(i)})
    for planted in faults.jobs(run):
        retry = {} if planted.retry_limit is None else {"retry_limit": planted.retry_limit}
        add(planted.app, parameters=planted.parameters, tags=planted.tags, **retry)
    made = client.jobs.bulk_create(jobs)
    for job in made:
        if job.tags.get("expect") == "fail":
            run.expect_fail.add(job.id)
        if job.tags.get("kind") == "transfer":
            i = int(job.tags["index"])
            run.stage_out[job.id] = (run.results / f"out-{i}.txt", f"{UPPER_INPUT}job {i}\n".upper())
    kinds: dict[str, int] = {}
    for job in made:
        kinds[job.tags.get("kind", "?")] = kinds.get(job.tags.get("kind", "?"), 0) + 1
    return f"{len(made)} jobs: " + ", ".join(f"{k} {n}" for k, n in sorted(kinds.items()))
