"""Running the installed ``tolu`` command in the api suite (imported as ``cli_helpers``)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import yaml

from harness.waiting import wait_until
from runner.client import Client

TOLU = str(Path(sys.executable).with_name("tolu"))
#: a safety net for a command that hangs; the tests wait on conditions, not on this.
HANG = 300


@dataclass(frozen=True)
class Ran:
    code: int
    out: str
    err: str


def run(*args: str, stdin: str = "", env: dict[str, str] | None = None) -> Ran:
    """``tolu ARGS`` as a process (as a user types it), with the test's credentials."""
    done = subprocess.run(
        [TOLU, *args],
        input=stdin,
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "250", **(env or {})},
        timeout=HANG,
        check=False,
    )
    return Ran(done.returncode, done.stdout, done.stderr)


def ok(*args: str, env: dict[str, str] | None = None) -> str:
    ran = run(*args, env=env)
    assert ran.code == 0, f"tolu {' '.join(args)} exited {ran.code}: {ran.err}\n{ran.out}"
    return ran.out


def one_error(*args: str, code: int = 1) -> str:
    ran = run(*args)
    lines = ran.err.strip().splitlines()
    assert ran.code == code and len(lines) == 1 and lines[0].startswith("Error: "), ran
    return lines[0]


def _interruptible() -> None:
    """Ctrl-C as in a terminal, whoever started the tests: a script that runs them in the
    background (`cmd &`) leaves SIGINT ignored, an ignored signal stays ignored across
    exec, and Python then never turns SIGINT into KeyboardInterrupt."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@contextmanager
def background(*args: str) -> Iterator[tuple[subprocess.Popen[str], Path]]:
    """``tolu ARGS`` running in the background; its stdout goes to a file the test reads
    as it grows. Ctrl-C (SIGINT) at the end unless it exited."""
    with tempfile.NamedTemporaryFile("w+", suffix=".out", delete=False) as out:
        path = Path(out.name)
    with path.open("w") as sink:
        proc = subprocess.Popen(
            [TOLU, *args],
            stdout=sink,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, "COLUMNS": "250"},
            preexec_fn=_interruptible,
        )
    try:
        yield proc, path
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=HANG)
        path.unlink(missing_ok=True)


def output_shows(path: Path, text: str, timeout: float = 120) -> str:
    return wait_until(
        lambda: path.read_text(), check=lambda out: text in out, timeout=timeout, what=f"{text!r}"
    )


SHELL_APPS = textwrap.dedent("""\
    apps:
      - name: hello
        command_template: echo hello {name}
        parameters: {name: world}
      - name: fail
        command_template: sh -c 'echo "boom $1"; exit $2' fail {word} {rc}
        parameters: {word: x, rc: 3}
""")


def make_site(client: Client, root: Path, name: str) -> Path:
    """A registered site directory with the apps hello and fail, synced."""
    (root / "apps").mkdir(parents=True)
    site = client.sites.create(
        name=name, path=str(root), hostname="localhost", settings_summary={"transfer_locations": ["local"]}
    )
    (root / "settings.yml").write_text(yaml.safe_dump({"site_id": site.id, "name": name}))
    (root / "apps" / "shell.yml").write_text(SHELL_APPS)
    ok("app", "sync", "--site", str(root))
    return root
