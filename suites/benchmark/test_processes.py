"""harness/bench/processes.py: tolu's processes found by role, their CPU counted, the tasks left out.

The processes are real: a chain of stand-in tolu processes (fake_tolu_process.py) that
announce their roles and burn a CPU time they report themselves, with a shell between
them (the runtime) and a task that burns CPU below the starter (excluded).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.bench import baselines
from harness.bench.processes import ProcessWatch, cpu_seconds, python_module
from harness.waiting import wait_until
from runner.roles import PREFIX, Role, announce

FAKE = Path(__file__).with_name("fake_tolu_process.py")
#: the watch reads the CPU clock after the process printed its own: the difference is
#: what printing and blocking on stdin cost, far below this
SLACK_S = 0.05

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc (Linux)")


@pytest.fixture
def chain() -> Iterator[tuple[subprocess.Popen[str], dict[str, dict[str, float]]]]:
    """coordinator (0.3 s) -> sh -> starter (0.2 s, with a task that burnt 0.3 s and idles)."""
    proc = subprocess.Popen(
        [sys.executable, str(FAKE), "coordinator", "0.3", "starter", "0.2"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stdin is not None
    reports = [json.loads(part) for part in proc.stdout.readline().split("\t")]
    try:
        yield proc, {r["role"]: r for r in reports}
    finally:
        proc.stdin.close()
        proc.wait(timeout=60)


def test_cpu_per_role_is_what_the_processes_burnt_and_tasks_are_left_out(
    chain: tuple[subprocess.Popen[str], dict[str, dict[str, float]]],
) -> None:
    proc, reports = chain
    watch = ProcessWatch()
    watch.watch("launcher", proc.pid)
    usage = watch.usage(0.0, time.time() + 60)

    for role in ("coordinator", "starter"):
        reported = reports[role]["cpu"]
        measured = usage[role].cpu_s
        assert reported <= measured <= reported + SLACK_S, (role, reported, measured)
        assert usage[role].processes == 1
    assert reports["coordinator"]["cpu"] >= 0.3 and reports["starter"]["cpu"] >= 0.2

    by_pid = {p.pid: p for p in watch.tolu_processes()}
    assert by_pid[proc.pid].role == "coordinator" and by_pid[proc.pid].source == "announced"
    # the shell between them is tolu's runtime; the task (which burnt 0.3 s) is nobody's
    (shell,) = [p for p in by_pid.values() if p.role == "runtime"]
    assert shell.argv[0] == "sh" and shell.source == "children"
    task_pid = int(reports["starter"]["task"])
    assert task_pid not in by_pid
    assert set(usage) == {"coordinator", "starter", "runtime"}
    assert usage["runtime"].cpu_s < SLACK_S


def test_cpu_in_a_window_leaves_out_what_came_before(
    chain: tuple[subprocess.Popen[str], dict[str, dict[str, float]]],
) -> None:
    proc, _ = chain
    watch = ProcessWatch()
    watch.watch("launcher", proc.pid)
    now = time.time()
    watch.sample()
    # everything the chain burnt happened before ``now``: nothing in the window after it
    later = watch.usage(now, time.time() + 60)
    assert all(u.cpu_s < SLACK_S for u in later.values()), later


def test_memory_and_rows_name_every_tolu_process(
    chain: tuple[subprocess.Popen[str], dict[str, dict[str, float]]],
) -> None:
    proc, reports = chain
    watch = ProcessWatch()
    watch.watch("launcher-0", proc.pid)
    rows = watch.rows(0.0, time.time() + 60)
    assert sorted(r.role for r in rows) == ["coordinator", "runtime", "starter"]
    assert {r.root for r in rows} == {"launcher-0"}
    starter = next(r for r in rows if r.role == "starter")
    assert starter.pid == reports["starter"]["pid"] and "fake_tolu_process.py" in starter.command
    rss = watch.peak_mb("launcher")
    assert rss is not None
    # two Python interpreters and a shell, without the task's interpreter
    assert sum(r.peak_rss_mb for r in rows) == pytest.approx(rss, rel=0.2)


def test_announce_names_the_process_and_exec_forgets_it() -> None:
    code = (
        "import sys, subprocess\n"
        "from runner.roles import Role, announce\n"
        "assert announce(Role.STARTER)\n"
        "print(open('/proc/self/comm').read().strip())\n"
        "print(subprocess.run(['cat', '/proc/self/comm'], capture_output=True, text=True).stdout.strip())\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == [Role.STARTER.comm, "cat"]
    assert all(len(role.comm) <= 15 and role.comm.startswith(PREFIX) for role in Role)
    assert {Role.from_comm(role.comm) for role in Role} == set(Role)
    assert Role.from_comm("python3") is None and announce is not None


def test_unannounced_processes_are_guessed_from_their_command_line() -> None:
    py = "/usr/bin/python3"
    assert python_module([py, "-P", "-m", "runner.server", "--port", "1"]) == "runner.server"
    assert python_module([py, "-mrunner.site.agent"]) == "runner.site.agent"
    assert python_module([py, "/venv/bin/tolu", "launcher"]) == "runner.cli.main"
    assert python_module([py, "-c", "pass"]) is None
    assert python_module(["/bin/true"]) is None


def test_the_pool_baseline_reads_its_workers_cpu_the_same_way(tmp_path: Path) -> None:
    measured = baselines.process_pool(["true"], workers=2, jobs=40)
    assert measured.cpu_s is not None and measured.cpu_s > 0
    # the like-for-like pool: each task in a directory of its own, its output in a file there
    with_dirs = baselines.process_pool(["sh", "-c", "pwd"], workers=2, jobs=10, workdirs=tmp_path / "w")
    assert with_dirs.name == "process_pool_workdirs" and with_dirs.cpu_s is not None
    outputs = sorted((tmp_path / "w").glob("*/job.out"))
    assert len(outputs) == 12  # 10 and one warm-up per worker
    assert all(out.read_text() == f"{out.parent}\n" for out in outputs)
    gone = subprocess.Popen(["true"])
    gone.wait()
    assert cpu_seconds(gone.pid) is None


FORKS = """
import json, os, sys, tempfile, time
from runner.roles import Role, announce

def burn(seconds):
    start = time.process_time()
    while time.process_time() - start < seconds:
        pass

announce(Role.COORDINATOR)
report_r, report_w = os.pipe()
hold_r, hold_w = os.pipe()
if os.fork() == 0:  # a worker: forked, no exec; announces its own role
    os.close(hold_w)
    announce(Role.STARTER)
    burn(0.2)
    os.write(report_w, (json.dumps({"pid": os.getpid(), "cpu": time.process_time()}) + "\\n").encode())
    os.read(hold_r, 1)
    os._exit(0)
if os.fork() == 0:  # a fork that never gets to exec: the parent's name and command, no work
    os.close(hold_w)
    os.read(hold_r, 1)
    os._exit(0)
# a task whose kernel name reads as its parent's (the file it runs is named so), like a
# task caught between the starter's fork and exec: not a tolu process
link = os.path.join(tempfile.mkdtemp(), Role.COORDINATOR.comm)
os.symlink("/bin/cat", link)
if os.fork() == 0:
    os.close(hold_w)
    os.dup2(hold_r, 0)
    os.execv(link, [link])
worker = json.loads(os.fdopen(report_r).readline())
print(json.dumps({"worker": worker, "me": os.getpid()}), flush=True)
sys.stdin.read()
os.close(hold_w)
os.wait(); os.wait(); os.wait()
"""


def test_forked_workers_count_by_their_announcement_idle_forks_and_tasks_named_like_them_not_at_all() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", FORKS], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None and proc.stdin is not None
    try:
        told = json.loads(proc.stdout.readline())
        watch = ProcessWatch()
        watch.watch("launcher", proc.pid)
        usage = watch.usage(0.0, time.time() + 60)
        worker = told["worker"]
        assert worker["cpu"] <= usage["starter"].cpu_s <= worker["cpu"] + SLACK_S
        assert usage["starter"].processes == 1 and usage["coordinator"].processes == 1
        pids = {p.pid: p.role for p in watch.tolu_processes()}
        assert pids == {told["me"]: "coordinator", worker["pid"]: "starter"}, "idle fork, task: nobody"
    finally:
        proc.stdin.close()
        proc.wait(timeout=60)


BURNER = (
    "import sys, time\n"
    "from runner.roles import Role, announce\n"
    "announce(Role.COORDINATOR)\n"
    "print('ready', flush=True)\n"
    "sys.stdin.readline()\n"
    "t0 = time.process_time()\n"
    "while time.process_time() - t0 < 0.3: pass\n"
    "print(t0, time.process_time(), flush=True)\n"
    "sys.stdin.read()\n"
)


def test_between_walks_the_clocks_of_known_processes_are_read_so_a_window_is_cut_sharply() -> None:
    """A walk every 60 s (only the first happens), clocks every 10 ms: the 0.3 s the
    process burns after the walk are seen, and a window around them holds them all."""
    proc = subprocess.Popen(
        [sys.executable, "-c", BURNER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdin is not None and proc.stdout is not None
    watch = ProcessWatch(interval=60, clock_interval=0.01)
    try:
        assert proc.stdout.readline().strip() == "ready"
        watch.watch("launcher", proc.pid)  # the one walk: finds it, announced
        watch.start()
        begin = time.time()
        proc.stdin.write("go\n")
        proc.stdin.flush()
        t0, t1 = (float(v) for v in proc.stdout.readline().split())
        (me,) = watch.tolu_processes()
        wait_until(lambda: me.cpu[-1] >= t1, timeout=30, interval=0.01, what="a clock read after the burn")
        end = time.time()
        assert me.role == "coordinator" and len(me.times) > 2
        usage = watch.usage(begin, end)["coordinator"].cpu_s
        # a clock read straddling ``begin`` may put up to one interval of the burn before it
        assert t1 - t0 - 0.02 <= usage <= t1 - t0 + SLACK_S
        assert watch.usage(0.0, begin)["coordinator"].cpu_s <= t0 + SLACK_S
    finally:
        watch.stop()
        proc.stdin.close()
        proc.wait(timeout=60)
