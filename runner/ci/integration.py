"""The integration pipeline: the whole system, end to end, as a user would run it.

``./ci/integration`` / ``tolu ci integration`` runs eleven steps, each reported as it runs
with its duration:

 1. build the wheel and install it into a fresh virtual environment;
 2. start the server (container, process, or an existing URL) and wait for /health;
 3. register and log in a user (``tolu register``, ``tolu login`` from the fresh venv);
 4. create a site (``tolu site init``) with the scheduler (local, or Slurm);
 5. populate apps and a realistic mix of jobs (single- and multi-rank MPI, a DAG, packed
    tasks, a job meant to fail, jobs with stage-in and stage-out);
 6. activate the transfer endpoints (local backend; Globus only where configured);
 7. configure the queue maintainer (depth 1) and start the site agent;
 8. monitor job and batch-job states and the logs until every job is final or a deadline;
 9. report failures: ERROR log lines, unexpected FAILED jobs, stuck jobs, failed batch jobs,
    launchers lost mid-run;
10. collect artifacts into ``artifacts/<run-id>/`` (logs, state histories, outputs,
    throughput, report.json + report.html);
11. check that the staged-out files exist at their destinations with the right content.

Steps 1-8 stop the run at the first failure; 9 and 10 always run once a site exists (so a
failed run still leaves its evidence), 11 runs when monitoring finished. Faults can be planted
on purpose (``--fault``) to prove the pipeline catches them; see docs/ci.md.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import html
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import yaml

#: faults the pipeline can plant; each must show up in the report.
FAULTS: dict[str, str] = {
    "job-fails": "a job whose app exits non-zero although it is not meant to fail",
    "empty-transfer": "a stage-out whose transfer endpoint delivers nothing where it should",
    "agent-error": "an ERROR logged inside the site agent (an app's postprocess hook)",
    "kill-launcher": "the launcher killed with SIGKILL while it runs a job",
}
REPORT_VERSION = 1
FINAL_STATES = {"JOB_FINISHED", "FAILED", "KILLED"}
BATCH_FINAL = {"SUBMIT_FAILED", "FINISHED", "FAILED"}
ERROR_LINE = re.compile(r"\bERROR\b|^Traceback \(most recent call last\)")
PASSWORD = "integration-pass-1"
UPPER_INPUT = "tolu integration input\nline two\n"


class StepFailed(Exception):
    """A step did not do what it should; the message says what failed."""


class _Server(Protocol):
    @property
    def url(self) -> str: ...

    def stop(self, timeout: float = ...) -> Any: ...


@dataclass
class StepResult:
    number: int
    name: str
    ok: bool
    seconds: float
    detail: str = ""


@dataclass
class Options:
    server: str = "process"  # process | container | http(s)://URL
    scheduler: str = "local"  # local | slurm
    artifacts: Path = Path("artifacts")
    run_id: str = ""
    deadline_sec: float = 600.0
    faults: tuple[str, ...] = ()
    #: reuse this venv (created when missing) instead of a fresh one per run; tolu is reinstalled.
    venv: Path | None = None
    database_url: str | None = None
    keep_work: bool = False
    #: make the venv see this interpreter's installed packages instead of installing tolu's
    #: dependencies (tolu itself still comes from the fresh wheel): fast, for planted-fault tests.
    shared_deps: bool = False


@dataclass
class Finding:
    kind: str  # error-log | unexpected-failure | expected-failure-missing | stuck | batch-failed | ...
    message: str
    where: str = ""


@dataclass
class PipelineResult:
    run_id: str
    ok: bool
    out_dir: Path
    steps: list[StepResult] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    failed_step: str = ""


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")


class Pipeline:
    def __init__(self, options: Options, *, out: Callable[[str], None] | None = None) -> None:
        unknown = set(options.faults) - set(FAULTS)
        if unknown:
            raise ValueError(f"unknown fault(s) {', '.join(sorted(unknown))}; known: {', '.join(FAULTS)}")
        self.o = options
        self.run_id = options.run_id or f"integration-{_now()}-{uuid.uuid4().hex[:6]}"
        self.out_dir = (options.artifacts / self.run_id).resolve()
        self.work = Path(tempfile.mkdtemp(prefix=f"tolu-{self.run_id}-"))
        self.site_dir = self.work / "site"
        self.inputs = self.work / "inputs"
        self.results = self.work / "results"
        self.misrouted = self.work / "misrouted"
        self.config = self.work / "credentials.yaml"
        self.print = out or (lambda line: print(line, flush=True))
        self.result = PipelineResult(self.run_id, False, self.out_dir)
        self.venv: Path = options.venv.resolve() if options.venv else self.work / "venv"
        self.server: _Server | None = None
        self.url = ""
        self.site_id: int | None = None
        self.username = f"ci-{uuid.uuid4().hex[:8]}"
        #: job id -> what the pipeline expects of it
        self.expect_fail: set[int] = set()
        self.stage_out: dict[int, tuple[Path, str]] = {}  # job id -> (destination, expected text)
        self.t0 = time.monotonic()
        self._log_offsets: dict[Path, int] = {}
        self.error_lines: list[tuple[str, str]] = []  # (log file, line)
        self.killed_launcher: int | None = None
        self.monitor_done = False
        self._cleaned = False

    # ------------------------------------------------------------------------ running
    def run(self) -> PipelineResult:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.print(
            f"integration run {self.run_id}: server={self.o.server} scheduler={self.o.scheduler}"
            + (f" faults={','.join(self.o.faults)}" if self.o.faults else "")
        )
        self.print(f"  work dir {self.work}; artifacts {self.out_dir}")
        steps: list[tuple[str, Callable[[], str]]] = [
            ("build the wheel, install it into a fresh venv", self.step_install),
            ("start the server", self.step_server),
            ("register and log in", self.step_user),
            ("create the site", self.step_site),
            ("populate apps and jobs", self.step_jobs),
            ("activate transfer endpoints", self.step_transfers),
            ("queue maintainer depth 1, start the site agent", self.step_agent),
            ("monitor until every job is final", self.step_monitor),
        ]
        try:
            for number, (name, fn) in enumerate(steps, start=1):
                if not self._step(number, name, fn):
                    break
            if self.site_id is not None:
                self._step(9, "report failures", self.step_report)
            self._cleanup()
            self._step(10, "collect artifacts", self.step_artifacts)
            if self.monitor_done:
                self._step(11, "check staged-out files", self.step_check_transfers)
        except BaseException:
            self._cleanup()
            raise
        finally:
            self._write_report()
            if not self.o.keep_work:
                shutil.rmtree(self.work, ignore_errors=True)
        self.result.ok = all(s.ok for s in self.result.steps) and not self.result.findings
        total = time.monotonic() - self.t0
        if self.result.ok:
            self.print(f"integration run PASSED in {total:.0f} s; report: {self.out_dir / 'report.html'}")
        else:
            self.print(f"integration run FAILED in {total:.0f} s at: {self.result.failed_step}")
            for finding in self.result.findings:
                self.print(f"  - [{finding.kind}] {finding.message}")
            self.print(f"  report: {self.out_dir / 'report.html'}")
        return self.result

    def _step(self, number: int, name: str, fn: Callable[[], str]) -> bool:
        self.print(f"[{number:2d}/11] {name} ...")
        t = time.monotonic()
        try:
            detail = fn() or ""
            ok = True
        except StepFailed as exc:
            detail, ok = str(exc), False
        except Exception as exc:  # a step's own bug or an unexpected error: report it, do not hide it
            detail, ok = f"{type(exc).__name__}: {exc}", False
        seconds = time.monotonic() - t
        self.result.steps.append(StepResult(number, name, ok, round(seconds, 2), detail))
        status = "ok" if ok else "FAILED"
        first, *rest = (detail or "").splitlines() or [""]
        self.print(f"[{number:2d}/11] {name}: {status} ({seconds:.1f} s){' - ' + first if first else ''}")
        for line in rest[:40]:
            self.print(f"        {line}")
        if not ok and not self.result.failed_step:
            self.result.failed_step = f"step {number} ({name}): {first}"
        return ok

    # ------------------------------------------------------------------------ helpers
    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("TOLU_")}
        env.update({"TOLU_CONFIG": str(self.config), "PATH": f"{self.venv / 'bin'}:{env.get('PATH', '')}"})
        env.pop("VIRTUAL_ENV", None)
        env.pop("PYTHONPATH", None)
        if self.url:
            env["TOLU_URL"] = self.url
        return env

    def tolu(self, *args: str, stdin: str | None = None, timeout: float = 120) -> str:
        cmd = [str(self.venv / "bin" / "tolu"), *args]
        proc = subprocess.run(
            cmd,
            input=stdin,
            capture_output=True,
            text=True,
            env=self._env(),
            timeout=timeout,
            cwd=self.work,
            check=False,
        )
        with (self.work / "commands.log").open("a") as fh:
            fh.write(f"$ tolu {' '.join(args)}\n{proc.stdout}{proc.stderr}(exit {proc.returncode})\n")
        if proc.returncode != 0:
            raise StepFailed(
                f"`tolu {' '.join(args)}` exited {proc.returncode}: "
                f"{(proc.stderr or proc.stdout).strip()[-800:]}"
            )
        return proc.stdout

    def client(self) -> Any:
        from runner.client import Client

        old = os.environ.get("TOLU_CONFIG")
        os.environ["TOLU_CONFIG"] = str(self.config)
        try:
            return Client.from_config()
        finally:
            if old is None:
                os.environ.pop("TOLU_CONFIG", None)
            else:
                os.environ["TOLU_CONFIG"] = old

    def _elapsed(self) -> str:
        return f"{time.monotonic() - self.t0:5.0f}s"

    # ------------------------------------------------------------------------ 1-7
    def step_install(self) -> str:
        root = Path(__file__).resolve().parents[2]
        if not (root / "pyproject.toml").is_file():
            raise StepFailed(f"{root} is not a source checkout (no pyproject.toml)")
        dist = self.work / "dist"
        build = subprocess.run(
            [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--wheel-dir", str(dist), str(root)],
            capture_output=True,
            text=True,
            check=False,
        )
        if build.returncode != 0:
            raise StepFailed(f"pip wheel failed: {build.stderr.strip()[-800:]}")
        wheel = next(dist.glob("tolu-*.whl"))
        fresh = not (self.venv / "bin" / "python").exists()
        if fresh:
            subprocess.run([sys.executable, "-m", "venv", str(self.venv)], check=True)
            if self.o.shared_deps:
                import site

                venv_site = next((self.venv / "lib").glob("python3*/site-packages"))
                (venv_site / "_tolu_ci_shared_deps.pth").write_text("\n".join(site.getsitepackages()) + "\n")
                # and their programs (mpiexec from the mpich wheel, ...)
                for program in Path(sys.executable).parent.iterdir():
                    target = self.venv / "bin" / program.name
                    if not target.exists() and not program.name.startswith(("activate", "python")):
                        target.symlink_to(program.resolve())
        pip = [str(self.venv / "bin" / "python"), "-m", "pip", "install", "-q"]
        reinstall = not fresh or self.o.shared_deps
        cmd = [*pip, "--force-reinstall", "--no-deps", str(wheel)] if reinstall else [*pip, str(wheel)]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise StepFailed(f"pip install {wheel.name} failed: {proc.stderr.strip()[-800:]}")
        if fresh:
            # the wheel's own dependencies must be complete: import every subpackage the user runs
            check = subprocess.run(
                [
                    str(self.venv / "bin" / "python"),
                    "-c",
                    "import runner.cli.main, runner.server.app, runner.site.agent, runner.launcher, "
                    "harness.plugin",
                ],
                capture_output=True,
                text=True,
                check=False,
            )
            if check.returncode != 0:
                raise StepFailed(f"installed tolu does not import: {check.stderr.strip()[-800:]}")
        version = subprocess.run(
            [str(self.venv / "bin" / "tolu"), "--version"], capture_output=True, text=True, check=False
        ).stdout.strip()
        return f"{wheel.name} into {'fresh ' if fresh else 'reused '}{self.venv} ({version})"

    def step_server(self) -> str:
        mode = self.o.server
        data = self.work / "server"
        if mode.startswith(("http://", "https://")):
            self.url = mode.rstrip("/")
        elif mode == "container":
            from harness.container import ContainerServer

            container = ContainerServer(
                data, database_url=self.o.database_url, log_path=self.out_dir / "logs" / "server.log"
            )
            self.server = container
            container.start(timeout=180)
            self.url = container.url
        elif mode == "process":
            from runner.server.process import ServerProcess

            process = ServerProcess(
                data, database_url=self.o.database_url, log_path=self.out_dir / "logs" / "server.log"
            )
            self.server = process
            process.start(timeout=60)
            self.url = process.url
        else:
            raise StepFailed(f"--server {mode!r}: expected process, container or a URL")
        import requests

        try:
            health = requests.get(f"{self.url}/health", timeout=10).json()
        except Exception as exc:
            raise StepFailed(f"{self.url}/health does not answer: {exc}") from exc
        return f"{mode} at {self.url} (version {health.get('version')}, {health.get('database')})"

    def step_user(self) -> str:
        self.tolu(
            "register",
            "--url",
            self.url,
            "-u",
            self.username,
            "--password-stdin",
            "--no-login",
            stdin=PASSWORD + "\n",
        )
        self.tolu("login", "--url", self.url, "-u", self.username, "--password-stdin", stdin=PASSWORD + "\n")
        me = self.client()
        return f"user {self.username} logged in at {me.url}"

    def step_site(self) -> str:
        self.tolu(
            "site",
            "init",
            str(self.site_dir),
            "--scheduler",
            self.o.scheduler,
            "--url",
            self.url,
            "--name",
            self.run_id,
        )
        from runner.site.settings import load

        settings = load(self.site_dir)
        if settings.site_id is None:
            raise StepFailed(f"`tolu site init` did not register the site ({self.site_dir}/settings.yml)")
        self.site_id = settings.site_id
        return f"site {self.run_id} (id {self.site_id}) at {self.site_dir}, scheduler {self.o.scheduler}"

    def _write_apps(self) -> None:
        apps = self.site_dir / "apps"
        py = self.venv / "bin" / "python"
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
        if "agent-error" in self.o.faults:
            (apps / "noisy.py").write_text(
                '"""Planted fault: a postprocess hook that logs an ERROR inside the site agent."""\n'
                "import logging\n\nfrom runner.apps import AppDef\n\n\n"
                "class Noisy(AppDef):\n"
                '    name = "noisy"\n'
                '    command_template = "true"\n\n'
                "    def postprocess(self):\n"
                '        logging.getLogger("runner.site").error("planted fault: noisy postprocess hook")\n'
            )

    def step_jobs(self) -> str:
        from runner.models import JobCreate, Resources, TransferDirection, TransferItemCreate

        self._write_apps()
        self.tolu("app", "sync", "--site", str(self.site_dir))
        client = self.client()
        apps = {a.name: a.id for a in client.apps.filter(site_id=self.site_id)}
        needed = {"hello", "ranks", "exitcode", "sleeper", "upper"}
        if "agent-error" in self.o.faults:
            needed.add("noisy")
        missing = needed - set(apps)
        if missing:
            raise StepFailed(f"apps not on the server after sync: {', '.join(sorted(missing))}")
        self.inputs.mkdir(parents=True, exist_ok=True)
        self.results.mkdir(parents=True, exist_ok=True)
        tag = {"run": self.run_id}
        jobs: list[JobCreate] = []

        def add(app: str, **kw: Any) -> None:
            tags = {**tag, **kw.pop("tags", {})}
            jobs.append(JobCreate(app_id=apps[app], tags=tags, **kw))

        add("hello", parameters={"name": "single-rank"}, tags={"kind": "mpi-1"})
        add("ranks", tags={"kind": "mpi-2"})
        add("hello", key="dag-a", parameters={"name": "dag-a"}, tags={"kind": "dag"})
        add("hello", key="dag-b", parents=["dag-a"], parameters={"name": "dag-b"}, tags={"kind": "dag"})
        add("hello", key="dag-c", parents=["dag-a"], parameters={"name": "dag-c"}, tags={"kind": "dag"})
        add(
            "hello",
            key="dag-d",
            parents=["dag-b", "dag-c"],
            parameters={"name": "dag-d"},
            tags={"kind": "dag"},
        )
        packed = Resources(num_nodes=1, ranks_per_node=1, node_packing_count=4)
        for _ in range(8):
            add("sleeper", resources=packed, tags={"kind": "packed"})
        add("exitcode", parameters={"code": 3}, retry_limit=0, tags={"kind": "fails", "expect": "fail"})
        for i in range(3):
            source = self.inputs / f"in-{i}.txt"
            source.write_text(f"{UPPER_INPUT}job {i}\n")
            dest_root = self.misrouted if ("empty-transfer" in self.o.faults and i == 0) else self.results
            items = [
                TransferItemCreate(
                    direction=TransferDirection.IN, source=f"local:{source}", destination="in.txt"
                ),
                TransferItemCreate(
                    direction=TransferDirection.OUT,
                    source="out.txt",
                    destination=f"{'misrouted' if dest_root == self.misrouted else 'results'}:"
                    f"{self.results / f'out-{i}.txt'}",
                ),
            ]
            add("upper", transfers=items, tags={"kind": "transfer", "index": str(i)})
        if "job-fails" in self.o.faults:
            add("exitcode", parameters={"code": 7}, retry_limit=0, tags={"kind": "planted-fault"})
        if "agent-error" in self.o.faults:
            add("noisy", tags={"kind": "planted-fault"})
        if "kill-launcher" in self.o.faults:
            add("sleeper", parameters={"seconds": 30}, tags={"kind": "planted-fault", "long": "1"})
        made = client.jobs.bulk_create(jobs)
        for job in made:
            if job.tags.get("expect") == "fail":
                self.expect_fail.add(job.id)
            if job.tags.get("kind") == "transfer":
                i = int(job.tags["index"])
                self.stage_out[job.id] = (self.results / f"out-{i}.txt", f"{UPPER_INPUT}job {i}\n".upper())
        kinds: dict[str, int] = {}
        for job in made:
            kinds[job.tags.get("kind", "?")] = kinds.get(job.tags.get("kind", "?"), 0) + 1
        return f"{len(made)} jobs: " + ", ".join(f"{k} {n}" for k, n in sorted(kinds.items()))

    def _edit_settings(self, edit: Callable[[dict[str, Any]], None]) -> None:
        path = self.site_dir / "settings.yml"
        data = yaml.safe_load(path.read_text()) or {}
        edit(data)
        path.write_text(yaml.safe_dump(data, sort_keys=False))

    def step_transfers(self) -> str:
        from runner.platform.transfer import get as get_backend

        def edit(data: dict[str, Any]) -> None:
            transfer = data.setdefault("transfer", {})
            locations = transfer.setdefault("locations", {})
            locations.setdefault("local", "local:")
            locations["results"] = "local:"
            # planted fault: an endpoint whose root is elsewhere; it "succeeds" but the file is not
            # where the job asked for it
            self.misrouted.mkdir(parents=True, exist_ok=True)
            locations["misrouted"] = f"local:{self.misrouted}"
            transfer["poll_interval_sec"] = 1.0
            transfer["retry_backoff_sec"] = 1.0

        self._edit_settings(edit)
        from runner.site.settings import load

        settings = load(self.site_dir)
        active = []
        for alias, spec in settings.transfer.locations.items():
            backend = spec.partition(":")[0]
            get_backend(backend)
            active.append(f"{alias}={spec}")
        globus = "configured" if settings.transfer.globus.client_id else "not configured (skipped)"
        return f"locations {', '.join(active)}; globus {globus}"

    def step_agent(self) -> str:
        def edit(data: dict[str, Any]) -> None:
            data["queue_maintainer"] = {
                **data.get("queue_maintainer", {}),
                "enabled": True,
                "depth": 1,
                "num_nodes": 1,
                "wall_time_min": 10,
                "job_mode": "mpi",
                "poll_interval_sec": 2.0,
            }
            data.setdefault("scheduler", {})["poll_interval_sec"] = 2.0
            data.setdefault("processing", {})["poll_interval_sec"] = 1.0
            launcher = data.setdefault("launcher", {})
            launcher["idle_timeout_sec"] = 20.0
            launcher["heartbeat_sec"] = 2.0

        self._edit_settings(edit)
        out = self.tolu("site", "start", str(self.site_dir), timeout=60)
        return out.strip().splitlines()[-1] if out.strip() else "agent started"

    # ------------------------------------------------------------------------ 8 monitor
    def _logs(self) -> list[Path]:
        files = []
        for sub in ("log", "batch"):
            d = self.site_dir / sub
            if d.is_dir():
                files += [
                    p for p in sorted(d.rglob("*")) if p.is_file() and p.suffix in {".log", ".out", ".stdout"}
                ]
        if self.server is not None:
            log_path = getattr(self.server, "log_path", None)
            if isinstance(log_path, Path) and log_path.exists():
                files.append(log_path)
        return files

    def _scan_logs(self, announce: bool = True) -> None:
        from harness.container import ContainerServer

        if isinstance(self.server, ContainerServer):
            self.server.collect_logs()
        for path in self._logs():
            offset = self._log_offsets.get(path, 0)
            try:
                with path.open("rb") as fh:
                    fh.seek(offset)
                    chunk = fh.read()
            except OSError:
                continue
            end = chunk.rfind(b"\n") + 1
            self._log_offsets[path] = offset + end
            for line in chunk[:end].decode(errors="replace").splitlines():
                if ERROR_LINE.search(line):
                    where = self._rel(path)
                    self.error_lines.append((where, line.strip()))
                    if announce:
                        self.print(f"        [{self._elapsed()}] ERROR in {where}: {line.strip()[:200]}")

    def _rel(self, path: Path) -> str:
        for base, name in ((self.site_dir, "site"), (self.out_dir, "artifacts"), (self.work, "work")):
            with contextlib.suppress(ValueError):
                return f"{name}/{path.relative_to(base)}"
        return str(path)

    def _launcher_pids(self) -> list[int]:
        import psutil

        pids = []
        for log_file in (self.site_dir / "log").glob("launcher-*.log"):
            m = re.match(r"launcher-(\d+)\.log$", log_file.name)
            if not m:
                continue
            pid = int(m.group(1))
            with contextlib.suppress(psutil.Error):
                proc = psutil.Process(pid)
                if proc.is_running() and "launcher" in " ".join(proc.cmdline()):
                    pids.append(pid)
        return pids

    def _maybe_kill_launcher(self, client: Any) -> None:
        if "kill-launcher" not in self.o.faults or self.killed_launcher is not None:
            return
        running = client.jobs.filter(site_id=self.site_id, state="RUNNING", tags={"long": "1"})
        pids = self._launcher_pids()
        if running and pids:
            os.kill(pids[0], signal.SIGKILL)
            self.killed_launcher = pids[0]
            self.print(
                f"        [{self._elapsed()}] planted fault: SIGKILL to launcher pid {pids[0]} "
                f"while job {running[0].id} runs"
            )

    def step_monitor(self) -> str:
        client = self.client()
        deadline = time.monotonic() + self.o.deadline_sec
        last_line, last_print = "", 0.0
        while True:
            counts = {str(k): n for k, n in client.jobs.counts(site_id=self.site_id).items() if n}
            batch = client.batch_jobs.filter(site_id=self.site_id)
            self._scan_logs()
            self._maybe_kill_launcher(client)
            total = sum(counts.values())
            final = sum(n for s, n in counts.items() if s in FINAL_STATES)
            line = ", ".join(f"{s} {n}" for s, n in sorted(counts.items()))
            bline = ", ".join(f"#{b.id} {b.state}" for b in batch[-3:])
            if line != last_line or time.monotonic() - last_print > 15:
                self.print(f"        [{self._elapsed()}] jobs: {line or '-'} | batch jobs: {bline or '-'}")
                last_line, last_print = line, time.monotonic()
            if total and final == total:
                self.monitor_done = True
                return f"all {total} jobs final: {line}"
            if time.monotonic() > deadline:
                self.monitor_done = True
                raise StepFailed(
                    f"{total - final} of {total} jobs not final after {self.o.deadline_sec:.0f} s: {line}"
                )
            time.sleep(2)

    # ------------------------------------------------------------------------ 9 report
    def step_report(self) -> str:
        client = self.client()
        self._scan_logs(announce=False)
        findings = self.result.findings
        for where, line in self.error_lines:
            findings.append(Finding("error-log", f"ERROR line in {where}: {line[:300]}", where))
        jobs = client.jobs.filter(site_id=self.site_id)
        now = dt.datetime.now(dt.UTC)
        for job in jobs:
            state = str(job.state)
            if state == "FAILED" and job.id not in self.expect_fail:
                findings.append(
                    Finding(
                        "unexpected-failure",
                        f"job {job.id} (tags {job.tags}) FAILED although it was not meant to: "
                        f"return code {getattr(job, 'return_code', None)}; {self._why(client, job.id)}; "
                        f"output {self._job_out(job)}",
                        f"job {job.id}",
                    )
                )
            elif job.id in self.expect_fail and state != "FAILED":
                findings.append(
                    Finding(
                        "expected-failure-missing",
                        f"job {job.id} was meant to fail but ended {state}",
                        f"job {job.id}",
                    )
                )
            elif state not in FINAL_STATES:
                events = client.events.filter(job_id=job.id)
                since = events[-1].timestamp if events else job.updated_at
                if since.tzinfo is None:
                    since = since.replace(tzinfo=dt.UTC)
                findings.append(
                    Finding(
                        "stuck",
                        f"job {job.id} (tags {job.tags}) stuck in {state} for "
                        f"{(now - since).total_seconds():.0f} s",
                        f"job {job.id}",
                    )
                )
        for event in client.events.filter(site_id=self.site_id, to_state="RUN_TIMEOUT"):
            findings.append(
                Finding(
                    "lost-launcher" if "session" in json.dumps(event.data).lower() else "timeout",
                    f"job {event.job_id} went RUNNING -> RUN_TIMEOUT at {event.timestamp:%H:%M:%S} "
                    f"({json.dumps(event.data)[:200]}): "
                    "its launcher stopped heartbeating or it hit its wall time",
                    f"job {event.job_id}",
                )
            )
        for b in client.batch_jobs.filter(site_id=self.site_id):
            if str(b.state).upper() in {"FAILED", "SUBMIT_FAILED"}:
                findings.append(
                    Finding(
                        "batch-failed",
                        f"batch job {b.id} (scheduler id {b.scheduler_id}) ended {b.state}: "
                        f"{json.dumps(b.status_info)[:300]}",
                        f"batch job {b.id}",
                    )
                )
        if self.killed_launcher is not None and not any(
            f.kind in {"lost-launcher", "batch-failed", "timeout"} for f in findings
        ):
            findings.append(
                Finding(
                    "lost-launcher",
                    f"launcher pid {self.killed_launcher} was killed, and no job or batch job shows it",
                    "launcher",
                )
            )
        if findings:
            kinds: dict[str, int] = {}
            for f in findings:
                kinds[f.kind] = kinds.get(f.kind, 0) + 1
            raise StepFailed(
                f"{len(findings)} finding(s): "
                + ", ".join(f"{k} {n}" for k, n in kinds.items())
                + "\n"
                + "\n".join(f"[{f.kind}] {f.message}" for f in findings)
            )
        return "no ERROR lines, no unexpected failures, nothing stuck"

    def _why(self, client: Any, job_id: int) -> str:
        """The last error or reason its Events give for a job."""
        events = list(reversed(client.events.filter(job_id=job_id)))
        for key in ("error", "traceback", "reason"):  # the cause before the verdict
            for event in events:
                if event.data.get(key):
                    return f"{event.to_state}: {str(event.data[key]).strip().splitlines()[-1][:200]}"
        return "no error in its events"

    def _job_out(self, job: Any) -> str:
        path = self.site_dir / "data" / job.workdir / "job.out"
        if not path.exists():
            return f"{self._rel(path)} (missing)"
        tail = " | ".join(path.read_text(errors="replace").strip().splitlines()[-3:])
        return f"{self._rel(path)}: {tail[:200]}"

    # ------------------------------------------------------------------------ cleanup
    def _cleanup(self) -> None:
        """Stop what this run started: batch jobs, the agent, launchers, the server."""
        if self._cleaned:
            return
        self._cleaned = True
        with contextlib.suppress(Exception):
            # state histories are read from the server: save them before it stops
            self._save_state()
        if self.site_dir.joinpath("settings.yml").exists() and self.config.exists() and self.url:
            with contextlib.suppress(Exception):
                client = self.client()
                active = [
                    b
                    for b in client.batch_jobs.filter(site_id=self.site_id)
                    if str(b.state).upper() not in BATCH_FINAL
                ]
                for b in active:
                    with contextlib.suppress(Exception):
                        self.tolu("queue", "rm", str(b.id), timeout=30)
                deadline = time.monotonic() + 30
                while active and time.monotonic() < deadline:
                    time.sleep(1)
                    active = [
                        b
                        for b in client.batch_jobs.filter(site_id=self.site_id)
                        if str(b.state).upper() not in BATCH_FINAL
                    ]
            with contextlib.suppress(Exception):
                self.tolu("site", "stop", str(self.site_dir), "--timeout", "20", timeout=60)
        if self.site_dir.exists():
            for pid in self._launcher_pids():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGTERM)
        if self.server is not None:
            with contextlib.suppress(Exception):
                self._scan_logs(announce=False)
            with contextlib.suppress(Exception):
                self.server.stop()

    # ------------------------------------------------------------------------ 10 artifacts
    def step_artifacts(self) -> str:
        out = self.out_dir
        (out / "logs").mkdir(parents=True, exist_ok=True)
        for sub in ("log", "batch"):
            src = self.site_dir / sub
            if src.is_dir():
                shutil.copytree(src, out / "logs" / sub, dirs_exist_ok=True)
        if (self.site_dir / "settings.yml").exists():
            shutil.copy(self.site_dir / "settings.yml", out / "site-settings.yml")
        if (self.work / "commands.log").exists():
            shutil.copy(self.work / "commands.log", out / "logs" / "commands.log")
        outputs = 0
        data = self.site_dir / "data"
        if data.is_dir():
            for path in data.rglob("*"):
                if path.is_file() and path.stat().st_size < 1_000_000:
                    dest = out / "job-outputs" / path.relative_to(data)
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy(path, dest)
                    outputs += 1
        if self.site_id is None or not self.config.exists():
            return f"logs copied ({outputs} job output files); no site, so no state histories"
        # the server is stopped by now: read state from the artifacts we saved during the run
        return f"logs, {outputs} job output files"

    def _save_state(self) -> None:
        """Job and batch-job state histories, while the server still runs."""
        if self.site_id is None or not self.url:
            return
        client = self.client()
        jobs = client.jobs.filter(site_id=self.site_id)
        events = client.events.filter(site_id=self.site_id)
        by_job: dict[int, list[dict[str, Any]]] = {}
        for e in events:
            by_job.setdefault(e.job_id, []).append(
                {
                    "from": str(e.from_state) if e.from_state else None,
                    "to": str(e.to_state),
                    "timestamp": e.timestamp.isoformat(),
                    "data": e.data,
                }
            )
        rows = []
        for j in jobs:
            row = json.loads(j.model_dump_json())
            row["events"] = by_job.get(j.id, [])
            rows.append(row)
        (self.out_dir / "jobs.json").write_text(json.dumps(rows, indent=1))
        batch = [json.loads(b.model_dump_json()) for b in client.batch_jobs.filter(site_id=self.site_id)]
        (self.out_dir / "batch_jobs.json").write_text(json.dumps(batch, indent=1))
        with contextlib.suppress(Exception):
            transfers = [
                json.loads(t.model_dump_json()) for t in client.transfers.filter(site_id=self.site_id)
            ]
            (self.out_dir / "transfers.json").write_text(json.dumps(transfers, indent=1))
        finished = sorted(e["timestamp"] for r in rows for e in r["events"] if e["to"] == "JOB_FINISHED")
        with (self.out_dir / "throughput.csv").open("w") as fh:
            fh.write("timestamp,jobs_finished\n")
            for n, t in enumerate(finished, start=1):
                fh.write(f"{t},{n}\n")

    # ------------------------------------------------------------------------ 11 transfers
    def step_check_transfers(self) -> str:
        problems = []
        for job_id, (dest, expected) in sorted(self.stage_out.items()):
            if not dest.exists():
                problems.append(f"job {job_id}: staged-out file {dest} does not exist")
            elif dest.read_text() != expected:
                problems.append(
                    f"job {job_id}: {dest} has the wrong content "
                    f"({dest.stat().st_size} bytes, expected {len(expected)})"
                )
        if problems:
            for p in problems:
                self.result.findings.append(Finding("transfer", p))
            raise StepFailed(
                f"{len(problems)} of {len(self.stage_out)} staged-out files wrong:\n" + "\n".join(problems)
            )
        return f"{len(self.stage_out)} staged-out files present with the right content"

    # ------------------------------------------------------------------------ report
    def _write_report(self) -> None:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        report = {
            "schema": "tolu-integration-report",
            "version": REPORT_VERSION,
            "run_id": self.run_id,
            "ok": all(s.ok for s in self.result.steps) and not self.result.findings,
            "options": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(self.o).items()},
            "server_url": self.url,
            "site_id": self.site_id,
            "failed_step": self.result.failed_step,
            "steps": [asdict(s) for s in self.result.steps],
            "findings": [asdict(f) for f in self.result.findings],
            "planted_faults": {f: FAULTS[f] for f in self.o.faults},
        }
        (self.out_dir / "report.json").write_text(json.dumps(report, indent=1, default=str))
        (self.out_dir / "report.html").write_text(self._html(report))

    def _html(self, report: dict[str, Any]) -> str:
        jobs: list[dict[str, Any]] = []
        with contextlib.suppress(Exception):
            jobs = json.loads((self.out_dir / "jobs.json").read_text())
        plots = []
        with contextlib.suppress(Exception):
            from harness import plots as hp

            for fn in (hp.throughput, hp.job_timeline):
                png = fn(jobs)
                if png:
                    plots.append(f'<img alt="plot" src="data:image/png;base64,{png}">')
        e = html.escape
        status = "PASSED" if report["ok"] else "FAILED"
        rows = "".join(
            f"<tr class={'ok' if s['ok'] else 'bad'}><td>{s['number']}</td><td>{e(s['name'])}</td>"
            f"<td>{'ok' if s['ok'] else 'FAILED'}</td><td>{s['seconds']:.1f} s</td>"
            f"<td><pre>{e(s['detail'])}</pre></td></tr>"
            for s in report["steps"]
        )
        findings = "".join(f"<li><b>{e(f['kind'])}</b>: {e(f['message'])}</li>" for f in report["findings"])
        states: dict[str, int] = {}
        for j in jobs:
            states[j["state"]] = states.get(j["state"], 0) + 1
        state_line = ", ".join(f"{k} {v}" for k, v in sorted(states.items()))
        return f"""<!doctype html><html><head><meta charset="utf-8">
<title>tolu integration {e(self.run_id)}</title>
<style>body{{font-family:sans-serif;margin:2em}}
td,th{{border:1px solid #ccc;padding:4px;vertical-align:top}} table{{border-collapse:collapse}}
.bad{{background:#fdd}} .ok{{background:#efe}} pre{{margin:0;white-space:pre-wrap}}</style>
</head><body><h1>tolu integration run {e(self.run_id)}: {status}</h1>
<p>{e(report["failed_step"] or "every step passed")}</p>
<p>server {e(str(report["options"]["server"]))} at {e(self.url)}; scheduler {e(self.o.scheduler)};
planted faults: {e(", ".join(self.o.faults) or "none")}</p>
<h2>Findings</h2><ul>{findings or "<li>none</li>"}</ul>
<h2>Steps</h2><table><tr><th>#</th><th>step</th><th>result</th><th>time</th><th>detail</th></tr>{rows}</table>
<h2>Jobs</h2><p>{e(state_line or "no job data")} (state histories: jobs.json; batch jobs: batch_jobs.json;
throughput: throughput.csv; logs: logs/; job outputs: job-outputs/)</p>
{"".join(plots)}
</body></html>
"""


def run_pipeline(options: Options, *, out: Callable[[str], None] | None = None) -> PipelineResult:
    return Pipeline(options, out=out).run()


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM (CI cancelling the job) runs the same cleanup as Ctrl-C."""

    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(
        prog="ci/integration", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--server", default="process", help="process | container | URL [process]")
    parser.add_argument("--scheduler", default="local", choices=["local", "slurm"])
    parser.add_argument("--artifacts", type=Path, default=Path("artifacts"))
    parser.add_argument("--run-id", default="")
    parser.add_argument("--deadline", type=float, default=600.0, help="seconds to wait for jobs [600]")
    parser.add_argument(
        "--fault",
        action="append",
        default=[],
        choices=sorted(FAULTS),
        help="plant a fault on purpose (repeatable)",
    )
    parser.add_argument("--venv", type=Path, help="reuse this venv instead of a fresh one")
    parser.add_argument("--database-url", help="server database (default: SQLite in its data dir)")
    parser.add_argument("--keep-work", action="store_true", help="keep the temporary work dir")
    parser.add_argument("--shared-deps", action="store_true",
                        help="fresh venv, but tolu's dependencies seen from this environment (fast)")
    args = parser.parse_args(argv)
    options = Options(
        server=args.server,
        scheduler=args.scheduler,
        artifacts=args.artifacts,
        run_id=args.run_id,
        deadline_sec=args.deadline,
        faults=tuple(args.fault),
        venv=args.venv,
        database_url=args.database_url,
        keep_work=args.keep_work,
        shared_deps=args.shared_deps,
    )
    with _sigterm_as_interrupt():
        result = run_pipeline(options)
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
