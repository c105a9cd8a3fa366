"""Probes: is a component really here and answering?

Each probe asks the real thing (``sinfo`` answers, the docker engine answers
``/_ping``, PostgreSQL accepts a connection, ``nvidia-smi`` lists a GPU) with a
short timeout, and says what it saw. Nothing here runs at import time.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

#: where the test PostgreSQL is (admin connection; CREATEDB role), see docs/ci.md.
DEFAULT_POSTGRES_URL = "postgresql+psycopg://tolu:tolu@127.0.0.1:5432/postgres"
DOCKER_SOCKET = "/var/run/docker.sock"
TIMEOUT_SEC = 5.0


@dataclass(frozen=True)
class Probe:
    """What one probe saw: the feature, whether it is present, and why we think so."""

    feature: str
    present: bool
    detail: str


def postgres_admin_url(env: Mapping[str, str] | None = None) -> str:
    env = os.environ if env is None else env
    return env.get("TOLU_TEST_POSTGRES_URL") or DEFAULT_POSTGRES_URL


def libpq_url(url: str) -> str:
    """``postgresql+psycopg://...`` (SQLAlchemy) -> ``postgresql://...`` (libpq)."""
    scheme, sep, rest = url.partition("://")
    return f"{scheme.split('+', 1)[0]}{sep}{rest}"


def _run(argv: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=TIMEOUT_SEC, check=False)


def _first_line(text: str) -> str:
    return next((line.strip() for line in text.splitlines() if line.strip()), "")


def probe_slurm() -> Probe:
    if shutil.which("sbatch") is None:
        return Probe("slurm", False, "sbatch not on PATH")
    try:
        done = _run(["sinfo", "--noheader", "--format=%P %D %c"])
    except (OSError, subprocess.TimeoutExpired) as exc:
        return Probe("slurm", False, f"sinfo did not answer: {exc}")
    if done.returncode != 0:
        return Probe("slurm", False, f"sinfo exit {done.returncode}: {_first_line(done.stderr)}")
    return Probe("slurm", True, f"sinfo answers: {_first_line(done.stdout) or 'no partitions'}")


def probe_pbs() -> Probe:
    if shutil.which("qsub") is None:
        return Probe("pbs", False, "qsub not on PATH")
    try:
        done = _run(["qstat", "-B"])
    except (OSError, subprocess.TimeoutExpired) as exc:
        return Probe("pbs", False, f"qstat did not answer: {exc}")
    if done.returncode != 0:
        return Probe("pbs", False, f"qstat -B exit {done.returncode}: {_first_line(done.stderr)}")
    return Probe("pbs", True, "qstat -B answers")


def docker_socket_path(env: Mapping[str, str] | None = None) -> str:
    env = os.environ if env is None else env
    host = env.get("DOCKER_HOST", "")
    return host.removeprefix("unix://") if host.startswith("unix://") else DOCKER_SOCKET


def probe_docker() -> Probe:
    path = docker_socket_path()
    if os.environ.get("DOCKER_HOST", "").startswith(("tcp://", "ssh://")):
        return Probe(
            "docker", False, f"DOCKER_HOST={os.environ['DOCKER_HOST']} is not probed (unix socket only)"
        )
    if not os.path.exists(path):
        return Probe("docker", False, f"no docker engine socket at {path}")
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(TIMEOUT_SEC)
            sock.connect(path)
            sock.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
            answer = sock.recv(4096).decode("latin-1")
    except OSError as exc:
        return Probe("docker", False, f"docker engine at {path} does not answer: {exc}")
    status = _first_line(answer)
    if " 200 " not in f"{status} ":
        return Probe("docker", False, f"docker engine at {path} answered {status!r}")
    return Probe("docker", True, f"docker engine answers at {path}")


def registry_address(env: Mapping[str, str] | None = None) -> str:
    """The test registry, host:port (ci/provision/registry.sh): $TOLU_REGISTRY or 127.0.0.1:5000."""
    env = os.environ if env is None else env
    return env.get("TOLU_REGISTRY", "127.0.0.1:5000")


def probe_registry() -> Probe:
    address = registry_address()
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=TIMEOUT_SEC) as sock:
            sock.sendall(f"GET /v2/ HTTP/1.0\r\nHost: {address}\r\n\r\n".encode())
            answer = sock.recv(4096).decode("latin-1")
    except OSError as exc:
        return Probe("registry", False, f"no container registry answers at {address}: {exc}")
    if " 200 " not in f"{_first_line(answer)} " or "docker-distribution-api-version" not in answer.lower():
        return Probe("registry", False, f"{address} answered {_first_line(answer)!r}, not a registry's /v2/")
    return Probe("registry", True, f"container registry (distribution API v2) at {address}")


def probe_postgres() -> Probe:
    url = postgres_admin_url()
    shown = _hide_password(url)
    try:
        import psycopg
    except ImportError as exc:
        return Probe("postgres", False, f"psycopg not importable: {exc}")
    try:
        with psycopg.connect(libpq_url(url), connect_timeout=int(TIMEOUT_SEC)) as conn:
            version = conn.info.server_version
    except Exception as exc:
        # not `except psycopg.Error`: pytester's in-process runs restore sys.modules, and a
        # psycopg imported again has a new Error class that the driver's errors do not match
        return Probe("postgres", False, f"cannot connect to {shown}: {_first_line(str(exc))}")
    return Probe("postgres", True, f"PostgreSQL {version // 10000}.{version % 10000} at {shown}")


def _hide_password(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    creds, at, host = rest.rpartition("@")
    if not at or ":" not in creds:
        return url
    return f"{scheme}{sep}{creds.split(':', 1)[0]}:***@{host}"


def probe_gpu() -> Probe:
    if shutil.which("nvidia-smi") is None:
        return Probe("gpu", False, "nvidia-smi not on PATH")
    try:
        done = _run(["nvidia-smi", "-L"])
    except (OSError, subprocess.TimeoutExpired) as exc:
        return Probe("gpu", False, f"nvidia-smi did not answer: {exc}")
    gpus = [line for line in done.stdout.splitlines() if line.startswith("GPU ")]
    if done.returncode != 0 or not gpus:
        return Probe("gpu", False, f"nvidia-smi -L exit {done.returncode}, {len(gpus)} GPUs")
    return Probe("gpu", True, f"{len(gpus)} GPU(s): {gpus[0]}")


def find_mpiexec() -> str | None:
    """``mpiexec`` on PATH, else next to this Python (the ``mpich`` wheel puts it in the venv)."""
    found = shutil.which("mpiexec")
    if found is None:
        beside = Path(sys.executable).parent / "mpiexec"
        found = str(beside) if beside.is_file() and os.access(beside, os.X_OK) else None
    return found


def mpi_version() -> str:
    """The version line of ``mpiexec --version`` ('' when there is no mpiexec)."""
    mpiexec = find_mpiexec()
    if mpiexec is None:
        return ""
    try:
        done = _run([mpiexec, "--version"])
    except (OSError, subprocess.TimeoutExpired):
        return ""
    lines = [" ".join(line.split()) for line in (done.stdout or done.stderr).splitlines() if line.strip()]
    if not lines:
        return ""
    # MPICH prints "HYDRA build details:" and the version on a later line; Open MPI one line.
    version = next((line for line in lines if "version" in line.lower()), lines[0])
    return version if version == lines[0] else f"{lines[0]} {version}"


def probe_mpi() -> Probe:
    path = find_mpiexec()
    if path is None:
        return Probe("mpi", False, "mpiexec not on PATH nor next to the Python interpreter")
    return Probe("mpi", True, f"{path}: {mpi_version() or 'version unknown'}")


#: the browser suites/ui drives: Debian's Chromium (``apt install chromium``), never a download.
DEFAULT_CHROMIUM = "/usr/bin/chromium"


def chromium_path(env: Mapping[str, str] | None = None) -> str:
    env = os.environ if env is None else env
    return env.get("TOLU_CHROMIUM") or DEFAULT_CHROMIUM


def probe_chromium() -> Probe:
    path = chromium_path()
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        return Probe("chromium", False, f"no Chromium at {path} (apt install chromium, or set TOLU_CHROMIUM)")
    try:
        import playwright  # noqa: F401  (the driver; the browser is the system one)
    except ImportError as exc:
        return Probe("chromium", False, f"playwright not importable: {exc}")
    try:
        done = _run([path, "--version"])
    except (OSError, subprocess.TimeoutExpired) as exc:
        return Probe("chromium", False, f"{path} --version did not answer: {exc}")
    version = next((line for line in done.stdout.splitlines() if "Chromium" in line), "")
    if done.returncode != 0 or not version:
        return Probe(
            "chromium", False, f"{path} --version exit {done.returncode}: {_first_line(done.stderr)}"
        )
    return Probe("chromium", True, f"{path}: {version.strip()}")


#: feature -> probe. Features not listed here come only from a location's declaration.
PROBES: dict[str, Callable[[], Probe]] = {
    "docker": probe_docker,
    "slurm": probe_slurm,
    "pbs": probe_pbs,
    "postgres": probe_postgres,
    "registry": probe_registry,
    "gpu": probe_gpu,
    "mpi": probe_mpi,
    "chromium": probe_chromium,
}


def run_probes(features: list[str] | None = None) -> tuple[Probe, ...]:
    """Run the probes (all, or the named ones) concurrently; never raises."""
    names = list(PROBES) if features is None else [f for f in features if f in PROBES]

    def safe(name: str) -> Probe:
        try:
            return PROBES[name]()
        except Exception as exc:  # a broken probe must not take the test run down
            return Probe(name, False, f"probe failed: {type(exc).__name__}: {exc}")

    with ThreadPoolExecutor(max_workers=max(1, len(names))) as pool:
        return tuple(pool.map(safe, names))
