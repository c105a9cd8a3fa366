"""A PostgreSQL server that a benchmark owns: its own data directory, port and processes.

``tolu bench chaos`` crashes and restarts its database; doing that to the machine's
shared cluster would disturb everyone else's tests. This one is made with ``initdb``
in a fresh directory, listens on 127.0.0.1 at a free port (its socket in that
directory), trusts local connections, and is started and stopped with ``pg_ctl``:
``stop("immediate")`` is PostgreSQL's crash (every process exits at once, no
checkpoint; the next start recovers from the WAL). Run as root, the server runs as
the ``postgres`` user, as PostgreSQL insists.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from runner.server.process import free_port

USER = "tolu"
DATABASE = "tolu"


class PostgresError(RuntimeError):
    """The private PostgreSQL server could not be made, started or stopped; says why."""


def bindir() -> Path:
    """Where ``initdb`` and ``pg_ctl`` are: on PATH, else the newest Debian/Ubuntu install."""
    found = shutil.which("pg_ctl")
    if found:
        return Path(os.path.realpath(found)).parent
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"), key=lambda p: int(p.parts[-3]))
    if versions:
        return versions[-1].parent
    raise PostgresError(
        "PostgreSQL's server programs (initdb, pg_ctl) are not installed: "
        "apt install postgresql (ci/provision/postgres.sh does it)"
    )


def version() -> str:
    """``15.18`` from ``pg_ctl (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)``."""
    try:
        out = subprocess.run(
            [str(bindir() / "pg_ctl"), "--version"], capture_output=True, text=True, timeout=30, check=False
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    found = re.search(r"\d+(\.\d+)+", out)
    return found.group(0) if found else "unknown"


class PostgresCluster:
    """``initdb``, then ``start()`` / ``stop(mode)`` as often as wanted; ``remove()`` at the end."""

    def __init__(self, *, port: int | None = None) -> None:
        self.bin = bindir()
        self.port = port or free_port()
        self.root = Path(tempfile.mkdtemp(prefix="tolu-pg-"))
        self.data = self.root / "data"
        self.log_path = self.root / "postgres.log"
        self._as: list[str] = []
        if os.geteuid() == 0:
            # PostgreSQL refuses to run as root; its directory must belong to its user
            try:
                owner = pwd.getpwnam("postgres")
            except KeyError:
                raise PostgresError("running as root needs a 'postgres' user to run PostgreSQL as") from None
            os.chown(self.root, owner.pw_uid, owner.pw_gid)
            self._as = ["runuser", "-u", "postgres", "--"]

    @property
    def url(self) -> str:
        """The SQLAlchemy URL of the database the run uses."""
        return f"postgresql+psycopg://{USER}@127.0.0.1:{self.port}/{DATABASE}"

    def _run(self, *argv: str, timeout: float = 120) -> str:
        command = [*self._as, *argv]
        try:
            done = subprocess.run(
                command, capture_output=True, text=True, timeout=timeout, check=False, cwd=self.root
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise PostgresError(f"{' '.join(command)}: {exc}") from None
        if done.returncode != 0:
            tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
            raise PostgresError(
                f"{' '.join(command)} exited {done.returncode}: {' / '.join(tail)} (log: {self.log_path})"
            )
        return done.stdout

    def init(self) -> PostgresCluster:
        self._run(
            str(self.bin / "initdb"),
            "-D",
            str(self.data),
            "-U",
            USER,
            "--auth=trust",
            "-E",
            "UTF8",
            "--no-sync",
        )
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write(
                "\n# tolu bench: a private server\n"
                f"port = {self.port}\n"
                "listen_addresses = '127.0.0.1'\n"
                f"unix_socket_directories = '{self.root}'\n"
                "max_connections = 200\n"
            )
        self.start()
        self._run(str(self.bin / "createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", USER, DATABASE)
        return self

    def start(self) -> None:
        self._run(
            str(self.bin / "pg_ctl"),
            "-D",
            str(self.data),
            "-l",
            str(self.log_path),
            "-w",
            "-t",
            "120",
            "start",
        )

    def stop(self, mode: str = "fast") -> None:
        """``fast`` (clean), or ``immediate``: every server process exits at once, as in a crash."""
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "-t", "120", "stop")

    def running(self) -> bool:
        try:
            self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "status")
        except PostgresError:
            return False
        return True

    def remove(self) -> None:
        """Stop the server if it runs, and delete its directory."""
        if self.data.exists() and self.running():
            with contextlib.suppress(PostgresError):
                self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)
