"""What the steps of one pipeline run share: its options and directories, the fresh venv's
``tolu``, the server and the site it made, and what it expects of each job."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import yaml

from harness.pipeline.faults import FAULTS
from harness.pipeline.logs import LogWatch
from harness.pipeline.options import Options
from harness.pipeline.results import PipelineResult
from harness.pipeline.step import StepFailed
from runner.client import Client

#: what the error of a failed `tolu` command keeps of its output
OUTPUT_TAIL_CHARS = 800


class Server(Protocol):
    """A started server: ServerProcess or ContainerServer (an existing URL has none)."""

    @property
    def url(self) -> str: ...

    def stop(self, timeout: float = ...) -> Any: ...


def new_run_id() -> str:
    now = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"integration-{now}-{uuid.uuid4().hex[:6]}"


def check_faults(faults: tuple[str, ...]) -> None:
    unknown = set(faults) - set(FAULTS)
    if unknown:
        raise ValueError(f"unknown fault(s) {', '.join(sorted(unknown))}; known: {', '.join(FAULTS)}")


class Run:
    """One pipeline run. ``work`` is its scratch directory (site, inputs, venv, credentials)."""

    def __init__(
        self, options: Options, *, run_id: str, work: Path, out: Callable[[str], None] | None = None
    ) -> None:
        check_faults(options.faults)
        self.options = options
        self.run_id = run_id
        self.out_dir = (options.artifacts / run_id).resolve()
        self.work = work
        self.site_dir = work / "site"
        self.inputs = work / "inputs"
        self.results = work / "results"
        #: where the empty-transfer fault's stage-out lands instead of results/
        self.misrouted = work / "misrouted"
        self.config = work / "credentials.yaml"
        self.print: Callable[[str], None] = out or (lambda line: print(line, flush=True))
        self.result = PipelineResult(run_id, False, self.out_dir)
        self.venv: Path = options.venv.resolve() if options.venv else work / "venv"
        self.server: Server | None = None
        self.url = ""
        self.site_id: int | None = None
        self.username = f"ci-{uuid.uuid4().hex[:8]}"
        #: job ids meant to fail; job id -> (staged-out destination, expected text)
        self.expect_fail: set[int] = set()
        self.stage_out: dict[int, tuple[Path, str]] = {}
        self.started = time.monotonic()
        self.started_at = dt.datetime.now(dt.UTC)
        #: 1, 5 and 15-minute load averages at the start: how busy the machine was
        self.load = os.getloadavg()
        self.logs = LogWatch()
        self.killed_launcher: int | None = None
        self.monitor_done = False

    def planted(self, fault: str) -> bool:
        return fault in self.options.faults

    def elapsed(self) -> str:
        return f"{time.monotonic() - self.started:5.0f}s"

    def rel(self, path: Path) -> str:
        """``path`` as a reader of the report finds it: site/..., artifacts/... or work/..."""
        for base, name in ((self.site_dir, "site"), (self.out_dir, "artifacts"), (self.work, "work")):
            if path.is_relative_to(base):
                return f"{name}/{path.relative_to(base)}"
        return str(path)

    # ------------------------------------------------------------------ the fresh venv's tolu
    def env(self) -> dict[str, str]:
        """This environment without tolu's settings, the fresh venv first on PATH."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("TOLU_")}
        env.update({"TOLU_CONFIG": str(self.config), "PATH": f"{self.venv / 'bin'}:{env.get('PATH', '')}"})
        env.pop("VIRTUAL_ENV", None)
        env.pop("PYTHONPATH", None)
        if self.url:
            env["TOLU_URL"] = self.url
        return env

    def tolu(self, *args: str, stdin: str | None = None, timeout: float = 120) -> str:
        """Run ``tolu ARGS`` from the fresh venv (logged to commands.log); its stdout."""
        cmd = [str(self.venv / "bin" / "tolu"), *args]
        proc = subprocess.run(
            cmd,
            input=stdin,
            capture_output=True,
            text=True,
            env=self.env(),
            timeout=timeout,
            cwd=self.work,
            check=False,
        )
        with (self.work / "commands.log").open("a") as fh:
            fh.write(f"$ tolu {' '.join(args)}\n{proc.stdout}{proc.stderr}(exit {proc.returncode})\n")
        if proc.returncode != 0:
            raise StepFailed(
                f"`tolu {' '.join(args)}` exited {proc.returncode}: "
                f"{(proc.stderr or proc.stdout).strip()[-OUTPUT_TAIL_CHARS:]}"
            )
        return proc.stdout

    def client(self) -> Client:
        """A client logged in as the run's user (the credentials `tolu login` saved)."""
        return Client.from_config(self.config)

    def edit_settings(self, edit: Callable[[dict[str, Any]], None]) -> None:
        path = self.site_dir / "settings.yml"
        data = yaml.safe_load(path.read_text()) or {}
        edit(data)
        path.write_text(yaml.safe_dump(data, sort_keys=False))
