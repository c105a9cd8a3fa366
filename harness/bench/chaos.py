"""``tolu bench chaos``: short jobs run while the launcher, the agent, the server and PostgreSQL are
killed and restarted at random; the figures are jobs lost, jobs run twice at once, final states.

One trial owns everything it runs: a private PostgreSQL server (harness/bench/postgres.py,
so crashing it disturbs nobody), the tolu server on it, a site whose app has a
``postprocess`` hook (so every job passes through the agent's processing service),
the site agent, and a serial- or MPI-mode launcher.

Faults are planned before the run from ``seed``: ``kills`` per target, each at a random
point of the run (a fraction of the jobs final, between 5 % and 85 %) and with a random
time down. One at a time, the driver

- **launcher**: SIGKILLs its whole process tree (launcher, ``mpiexec``, ranks, tasks:
  a node crash) and starts a new launcher after the time down;
- **agent** / **server**: SIGKILLs the process (its tree) and starts a new one on the
  same site / port;
- **postgresql**: ``pg_ctl stop -m immediate`` (every server process exits at once,
  no checkpoint) and ``pg_ctl start`` (crash recovery) after the time down.

A launcher, agent or server that exits by itself is restarted too, and the trial
lists it: that is a finding (a launcher that gives up during an outage, a server that
dies on a database error). Each task appends its start and end to a journal, so the
runs that really happened are known besides what the server recorded
(harness/bench/doubles.py).
"""

from __future__ import annotations

import contextlib
import os
import random
import secrets
import shlex
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from harness.bench import doubles, history, stats
from harness.bench.history import FINAL, Step
from harness.bench.postgres import PostgresCluster
from harness.bench.processes import children
from harness.bench.schema import ChaosEvent, FigureInfo, Phase, Scenario, Trial
from harness.bench.stack import write_site
from harness.bench.throughput import JobRow, NoProgress, Progress, TrialOutput
from harness.waiting import WaitTimeout, wait_until

TARGETS = ("launcher", "agent", "server", "postgresql")
#: faults happen when this share of the jobs has run (not at the very start or end)
WINDOW = (0.05, 0.85)
#: the states of a job that has run (RESTART_READY waits to run again)
RAN = ("RUN_DONE", "RUN_ERROR", "RUN_TIMEOUT", "POSTPROCESSED", "STAGED_OUT", *FINAL)
APP = "chaos"
#: seconds between progress polls
POLL_S = 1.0


def _info(unit: str, description: str, aim: str | None = None) -> FigureInfo:
    return FigureInfo(unit=unit, better="lower" if aim else "none", description=description, aim=aim)


FIGURES: dict[str, FigureInfo] = {
    "jobs_lost": _info("jobs", "jobs not in a final state when the run ended (or missing)", "<= 0"),
    "run_twice_concurrently": _info(
        "jobs", "jobs whose RUNNING stretches overlap in the Event history", "<= 0"
    ),
    "task_runs_concurrent": _info(
        "jobs", "jobs whose task runs overlap in the tasks' own journal (what really ran)", "<= 0"
    ),
    "jobs_finished": _info("jobs", "jobs JOB_FINISHED"),
    "jobs_failed": _info("jobs", "jobs FAILED (e.g. out of retries after repeated crashes)"),
    "jobs_rerun": _info("jobs", "jobs with more than one RUNNING stretch (run again after a crash)"),
    "unrecorded_starts": _info(
        "runs",
        "task runs in the journal without a RUNNING stretch in the history (starts never reported)",
        "<= 0",
    ),
    "replayed_starts": _info(
        "runs", "RUNNING Events repeating an earlier start of the same job (one start recorded twice)", "<= 0"
    ),
    "faults": _info("faults", "faults injected"),
    "unplanned_exits": _info("exits", "launcher, agent or server exits nobody asked for (restarted)"),
    "overall_s": _info("s", "first submission to the last job final"),
    "jobs_per_s": _info("jobs/s", "jobs / overall_s, outages included"),
}


class ChaosError(RuntimeError):
    """A chaos run that could not set itself up (the server would not start); says why."""


@dataclass(frozen=True)
class Fault:
    target: str
    at_fraction: float
    down_s: float


def plan(*, kills: int, targets: tuple[str, ...], seed: int, down_s: tuple[float, float]) -> list[Fault]:
    """``kills`` faults per target at random points of the run, in the order they happen."""
    rng = random.Random(seed)
    faults = [
        Fault(target, round(rng.uniform(*WINDOW), 3), round(rng.uniform(*down_s), 1))
        for target in targets
        for _ in range(kills)
    ]
    return sorted(faults, key=lambda f: f.at_fraction)


def task_script(journal: Path, sleep_s: float) -> str:
    """The job: note its start and end (job id, the shell's pid, epoch seconds) in the journal."""
    path = shlex.quote(str(journal))
    work = f"sleep {sleep_s:g}; " if sleep_s > 0 else ""
    start, end = (f'echo "$TOLU_JOB_ID $$ {what} $EPOCHREALTIME" >> {path}' for what in ("s", "e"))
    return f"{start}; {work}{end}"


def app_file(journal: Path, sleep_s: float) -> str:
    # braces are a command template's placeholders: a path holding one stays literal
    command = shlex.join(["bash", "-c", task_script(journal, sleep_s)]).replace("{", "{{").replace("}", "}}")
    return (
        '"""tolu bench chaos: a short task with a postprocess hook (the agent is on every path)."""\n\n'
        "from runner.apps import AppDef\n\n\n"
        "class Chaos(AppDef):\n"
        f"    name = {APP!r}\n"
        f"    command_template = {command!r}\n\n"
        "    def postprocess(self):\n"
        "        return None\n"
    )


# ---------------------------------------------------------------- the pieces, restartable


def kill_tree(pid: int) -> None:
    """SIGKILL ``pid`` and every process below it (collected first, then killed top down)."""
    found = [pid]
    i = 0
    while i < len(found):
        found.extend(children(found[i]))
        i += 1
    for victim in found:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(victim, signal.SIGKILL)


class Piece:
    """A process of the run (a child of ours) that is started, killed and started again."""

    def __init__(self, name: str, start: Callable[[], subprocess.Popen[bytes]]) -> None:
        self.name = name
        self._start = start
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = self._start()

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL its whole process tree, and reap it."""
        if self.proc is not None:
            kill_tree(self.proc.pid)
            self.proc.wait(30)

    def stop(self, timeout: float = 30) -> None:
        """SIGTERM, then SIGKILL of the tree after ``timeout``."""
        if self.proc is None or self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            self.proc.terminate()
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()


@dataclass
class ChaosScenario:
    """``jobs`` jobs while ``kills`` faults per target hit the launcher, agent, server and PostgreSQL."""

    work_dir: Path
    jobs: int = 20_000
    kills: int = 3
    mode: str = "serial"
    workers: int = 2
    sleep_s: float = 0.0
    seed: int = 0
    targets: tuple[str, ...] = TARGETS
    down_s: tuple[float, float] = (1.0, 10.0)
    timeout_s: float = 3600.0
    progress: Progress = field(default_factory=NoProgress)
    say: Callable[[str], None] = lambda line: None

    @property
    def name(self) -> str:
        return "chaos"

    def describe(self) -> Scenario:
        return Scenario(
            name=self.name,
            description=(
                f"{self.jobs} short jobs, {self.mode} mode, {self.workers} slots; "
                f"{self.kills} kill(s) of each of {', '.join(self.targets)} at random (seed {self.seed})"
            ),
            parameters={
                "jobs": self.jobs,
                "kills": self.kills,
                "targets": list(self.targets),
                "mode": self.mode,
                "workers": self.workers,
                "sleep_s": self.sleep_s,
                "seed": self.seed,
                "down_s": list(self.down_s),
            },
            figure_info=dict(FIGURES),
        )

    def run(self, index: int) -> TrialOutput:
        work = self.work_dir / f"chaos-{index}"
        work.mkdir(parents=True, exist_ok=True)
        with contextlib.ExitStack() as cleanup:
            pg = PostgresCluster()
            cleanup.callback(pg.remove)
            pg.init()
            return _Trial(self, index, work, pg, cleanup).run()
        raise AssertionError("unreachable")  # pragma: no cover (mypy: ExitStack may swallow)


class _Trial:
    """One chaos trial: its stack, its faults, its figures."""

    def __init__(
        self,
        scenario: ChaosScenario,
        index: int,
        work: Path,
        pg: PostgresCluster,
        cleanup: contextlib.ExitStack,
    ) -> None:
        from runner.server.process import ServerProcess, free_port

        self.s = scenario
        self.index = index
        self.work = work
        self.pg = pg
        self.cleanup = cleanup
        self.journal = work / "journal.txt"
        (work / "server").mkdir(parents=True, exist_ok=True)
        self.site_dir = work / "site"
        self.config_path = work / "credentials.yaml"
        self.events: list[ChaosEvent] = []
        #: job id -> creation time, as bulk create answered
        self.jobs: dict[int, float] = {}
        self.launcher_kills: list[float] = []
        self.t0 = time.time()
        # its command line and URL; the process itself is started (and restarted) by _start_server
        self.server = ServerProcess(work / "server", port=free_port(), database_url=pg.url)
        self._logs: list[IO[bytes]] = []

    # ------------------------------------------------------------ set up

    def _open(self, name: str) -> IO[bytes]:
        folder = self.site_dir / "log"
        folder.mkdir(parents=True, exist_ok=True)
        out = (folder / f"chaos-{name}-{len(self._logs)}.log").open("ab")
        self.cleanup.callback(out.close)
        self._logs.append(out)
        return out

    def _start_server(self) -> subprocess.Popen[bytes]:
        from runner.server.process import health

        proc = subprocess.Popen(
            self.server.command(),
            env={**os.environ, "TOLU_DATA_DIR": str(self.server.data_dir), "PYTHONUNBUFFERED": "1"},
            stdin=subprocess.DEVNULL,
            stdout=self._open("server"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        failed = ChaosError(f"the tolu server did not come up; its log is in {self.site_dir / 'log'}")

        def answers() -> bool:
            if proc.poll() is not None:
                raise failed
            return health(self.server.url, timeout=2) is not None

        try:
            wait_until(answers, timeout=120, interval=0.2, what="the tolu server to answer /health")
        except WaitTimeout:
            raise failed from None
        return proc

    def _start_agent(self) -> subprocess.Popen[bytes]:
        from runner.interpreter import module_command

        return subprocess.Popen(
            [*module_command("runner.site.agent"), str(self.site_dir)],
            env={**os.environ, "TOLU_CONFIG": str(self.config_path)},
            stdin=subprocess.DEVNULL,
            stdout=self._open("agent"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def _start_launcher(self) -> subprocess.Popen[bytes]:
        from runner.launcher.process import LauncherProcess

        launcher = LauncherProcess(self.site_dir, self.s.mode, env={"TOLU_CONFIG": str(self.config_path)})
        argv = launcher.argv()
        return subprocess.Popen(
            argv,
            env={**os.environ, "TOLU_CONFIG": str(self.config_path)},
            stdin=subprocess.DEVNULL,
            stdout=self._open("launcher"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def _set_up(self) -> tuple[Any, dict[str, str]]:
        from runner.apps import load_apps
        from runner.client import Client

        server = Piece("server", self._start_server)
        server.start()
        self.cleanup.callback(lambda: server.stop())
        self.pieces = {"server": server}
        username, password = f"chaos_{secrets.token_hex(4)}", secrets.token_urlsafe(16)
        Client.register(self.server.url, username, password)
        client = Client.login(self.server.url, username, password)
        client.save_config(self.config_path)
        self.site_dir.mkdir(parents=True, exist_ok=True)
        site = client.sites.create(
            name=f"chaos-{secrets.token_hex(3)}", path=str(self.site_dir), hostname=socket.gethostname()
        )
        self.site_id = int(site.id)
        write_site(
            self.site_dir,
            site_id=self.site_id,
            server_url=self.server.url,
            slots=self.s.workers,
            services=["processing"],
            processing={"poll_interval_sec": 1.0},
        )
        (self.site_dir / "apps" / f"{APP}.py").write_text(app_file(self.journal, self.s.sleep_s))
        apps = load_apps(self.site_dir / "apps")
        client.apps.sync(self.site_id, [a.to_create(self.site_id) for a in apps])
        app_id = next(int(a.id) for a in client.apps.filter(site_id=self.site_id) if a.name == APP)
        tags = {"chaos": f"{self.index}-{int(time.time())}"}
        spec = {"app_id": app_id, "tags": tags}
        self.t0 = time.time()
        for start in range(0, self.s.jobs, 10_000):
            self.jobs.update(
                history.created(client.jobs.bulk_create([spec] * min(10_000, self.s.jobs - start)))
            )
        for name, start_fn in (("agent", self._start_agent), ("launcher", self._start_launcher)):
            piece = Piece(name, start_fn)
            piece.start()
            self.cleanup.callback(piece.stop)
            self.pieces[name] = piece
        return client, tags

    # ------------------------------------------------------------ faults

    def _note(self, target: str, action: str, done: float, down_s: float = 0.0, note: str = "") -> None:
        event = ChaosEvent(
            target=target,
            action=action,
            at_s=time.time() - self.t0,
            down_s=down_s,
            done_fraction=done,
            note=note,
        )
        self.events.append(event)
        self.s.say(
            f"{event.at_s:7.1f} s  {done:4.0%} run  {target}: {action}" + (f" ({note})" if note else "")
        )

    def _inject(self, fault: Fault, done: float) -> None:
        if fault.target == "postgresql":
            self._note("postgresql", "crash (pg_ctl stop -m immediate)", done, fault.down_s)
            self.pg.stop("immediate")
            time.sleep(fault.down_s)
            self.pg.start()
            return
        piece = self.pieces[fault.target]
        self._note(
            fault.target,
            "SIGKILL" + (" (its process tree)" if fault.target == "launcher" else ""),
            done,
            fault.down_s,
        )
        piece.kill()
        if fault.target == "launcher":
            # noted once the tree is dead, not when the kill began: a starter still alive
            # for the moment the walk takes may start a task after that, and the run it
            # began (no end in the journal) ended with this kill all the same
            self.launcher_kills.append(time.time())
        time.sleep(fault.down_s)
        piece.start()

    def _revive(self, done: float) -> None:
        """Restart what exited by itself (a finding, listed in the trial)."""
        for piece in self.pieces.values():
            if piece.proc is not None and not piece.alive():
                code = piece.proc.returncode
                self._note(piece.name, "exited by itself: restarted", done, note=f"exit code {code}")
                if piece.name == "launcher":
                    self.launcher_kills.append(time.time())  # its tasks went with it
                piece.start()

    def _progress(self, client: Any, tags: dict[str, str]) -> tuple[float, float] | None:
        """Shares of the jobs that have run and that are final; None while the server cannot say."""
        try:
            counts = client.jobs.counts(site_id=self.site_id, tags=tags)
        except Exception:  # the server or its database is down: that is the point
            return None
        ran = sum(int(n) for state, n in counts.items() if str(state) in RAN)
        final = sum(int(n) for state, n in counts.items() if str(state) in FINAL)
        return ran / self.s.jobs, final / self.s.jobs

    # ------------------------------------------------------------ the trial

    def run(self) -> TrialOutput:
        started_at = datetime.now(UTC)
        client, tags = self._set_up()
        # progress polls give up at once while the server is down (the run's own client retries)
        poller = client.clone(timeout=10, retries=0)  # shares the renewing credential
        faults = plan(
            kills=self.s.kills, targets=self.s.targets, seed=self.s.seed + self.index, down_s=self.s.down_s
        )
        self.s.progress.begin(f"chaos: {self.s.jobs} jobs, {len(faults)} faults", self.s.jobs)
        deadline = time.monotonic() + self.s.timeout_s
        ran = 0.0
        try:
            while time.monotonic() < deadline:
                now = self._progress(poller, tags)
                if now is not None:
                    ran, final = now
                    self.s.progress.update(round(final * self.s.jobs))
                    if final >= 1.0:
                        break
                    if faults and ran >= faults[0].at_fraction:
                        self._inject(faults.pop(0), ran)
                        continue
                self._revive(ran)
                time.sleep(POLL_S)
        finally:
            self.s.progress.end()
        last_seen = time.time()
        self.pieces["launcher"].stop()
        self.pieces["agent"].stop()
        # the server must answer for the history: bring back whatever is down
        if not self.pg.running():
            self.pg.start()
        if not self.pieces["server"].alive():
            self.pieces["server"].start()
        return self._figures(client, tags, started_at, last_seen, faults_left=len(faults))

    def _figures(
        self, client: Any, tags: dict[str, str], started_at: datetime, last_seen: float, *, faults_left: int
    ) -> TrialOutput:
        steps = history.steps(client, sorted(self.jobs))
        past = history.summarize(self.jobs, ((job, s) for job, ss in steps.items() for s in ss), t0=self.t0)
        runs = doubles.read_journal(self.journal, kills=self.launcher_kills)
        found = doubles.find(steps, runs)
        states = past.final_states()
        final = sum(n for state, n in states.items() if state in FINAL)
        missing = states.get("MISSING", 0)
        rows = [self._row(job, past, steps.get(job, [])) for job in sorted(past.created)]
        finals = [r.final_s for r in rows if r.final_s is not None]
        overall = max(finals) if finals else last_seen - self.t0
        figures: dict[str, float | None] = {
            "jobs_lost": float(len(past.created) - final),
            "run_twice_concurrently": float(len(found.history)),
            "task_runs_concurrent": float(len(found.journal)),
            "jobs_finished": float(states.get("JOB_FINISHED", 0)),
            "jobs_failed": float(states.get("FAILED", 0)),
            "jobs_rerun": float(len(found.rerun)),
            "unrecorded_starts": float(found.unrecorded_starts),
            "replayed_starts": float(found.replayed_starts),
            "faults": float(sum(1 for e in self.events if "by itself" not in e.action)),
            "unplanned_exits": float(sum(1 for e in self.events if "by itself" in e.action)),
            "overall_s": overall,
            "jobs_per_s": stats.rate(self.s.jobs, overall),
        }
        notes = [
            f"faults not injected (the run ended or timed out first): {faults_left}" if faults_left else "",
            self._where_lost(client, [job for job, state in past.state.items() if state not in FINAL]),
            f"jobs run twice at once (history): {found.history[:20]}" if found.history else "",
            f"jobs run twice at once (journal): {found.journal[:20]}" if found.journal else "",
            f"{missing} created jobs have no Events on the server (gone)" if missing else "",
            *(
                self._story(job, steps.get(job, []), runs.get(job, []))
                for job in sorted(set(found.history + found.journal))[:6]
            ),
            *(
                f"{what}: "
                + "; ".join(self._story(job, steps.get(job, []), runs.get(job, [])) for job in jobs[:3])
                for what, jobs in (
                    ("starts not in the history", found.unrecorded),
                    ("replayed starts", found.replayed),
                )
                if jobs
            ),
            f"task journal: {self.journal} (kept with --keep-work)",
        ]
        busy = [(r.running_s, r.done_s) for r in rows if r.running_s is not None and r.done_s is not None]
        step = stats.time_step(overall, self.s.jobs)
        trial = Trial(
            index=self.index,
            started_at=started_at,
            seconds=overall,
            phases=[
                Phase(
                    name="overall",
                    start_s=0.0,
                    end_s=overall,
                    jobs=self.s.jobs,
                    seconds=overall,
                    jobs_per_s=figures["jobs_per_s"],
                )
            ],
            figures=figures,
            notes=[n for n in notes if n],
            final_states=states,
            chaos=self.events,
            series={
                "running": stats.concurrency(busy, step=step),
                "completions_per_s": stats.completions([end for _, end in busy], step=step),
            },
        )
        return TrialOutput(trial, rows)

    def _where_lost(self, client: Any, lost: list[int]) -> str:
        """Where the jobs that never ended are: their state and the session holding them
        (held by a live session that never ran them, or held by none: different bugs)."""
        if not lost:
            return ""
        try:
            held = {j.id: j.session_id for j in client.jobs.filter(id=lost[:100])}
        except Exception as exc:  # the server cannot say: the note says so
            return f"jobs not final: {len(lost)} ({lost[:20]}); their sessions unknown: {exc}"
        by_session: dict[str, list[int]] = {}
        for job in lost[:100]:
            session = held.get(job)
            by_session.setdefault("none" if session is None else f"session {session}", []).append(job)
        where = "; ".join(f"{who}: {jobs[:20]}" for who, jobs in sorted(by_session.items()))
        return f"jobs not final: {len(lost)}, held by {where}"

    def _story(self, job: int, steps: list[Step], runs: list[doubles.Stretch]) -> str:
        """A doubled job's Events and task runs, in seconds from the start, for a person to read."""
        events = ", ".join(f"{s.from_state or '-'}->{s.to_state} @{s.at - self.t0:.3f}" for s in steps)
        ran = ", ".join(f"{a - self.t0:.3f}..{b - self.t0:.3f}" for a, b in sorted(runs))
        return f"job {job}: Events {events}; task runs {ran or 'none'}"

    def _row(self, job: int, past: history.History, steps: list[Step]) -> JobRow:
        at = past.at
        done = at["RUN_DONE"].get(job) or at["RUN_ERROR"].get(job) or at["RUN_TIMEOUT"].get(job)
        final = next((at[s][job] for s in FINAL if job in at[s]), None)
        return JobRow(
            "chaos", self.index, job, past.created[job], at["RUNNING"].get(job), done, final, past.state[job]
        )
