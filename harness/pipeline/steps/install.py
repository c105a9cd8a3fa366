"""Step 1: build the wheel and install it into a fresh venv; every later ``tolu`` runs from there.

It is installed as a user on a machine without an MPI would (``tolu[mpich]``: the launchers need
``mpiexec`` and the library mpi4py loads), at the versions CI passed with (``ci/constraints.txt``).
"""

from __future__ import annotations

import site
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from harness.checkout import REPO_ROOT, forget_stale_build, is_checkout
from harness.pipeline.step import StepFailed

if TYPE_CHECKING:
    from harness.pipeline.context import Run

EXTRAS = "[mpich]"
CONSTRAINTS = REPO_ROOT / "ci" / "constraints.txt"
#: what `pip install tolu` promises, imported in the fresh venv: its dependencies are complete
PRODUCT_MODULES = "runner.cli.main, runner.server.app, runner.site.agent, runner.launcher"
#: what a failure message keeps of pip's output
OUTPUT_TAIL_CHARS = 800


def _share_dependencies(venv: Path) -> None:
    """Make the venv see this interpreter's packages and programs (mpiexec from the mpich
    wheel, ...) instead of installing tolu's dependencies again."""
    venv_site = next((venv / "lib").glob("python3*/site-packages"))
    (venv_site / "_tolu_ci_shared_deps.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    for program in Path(sys.executable).parent.iterdir():
        target = venv / "bin" / program.name
        if not target.exists() and not program.name.startswith(("activate", "python")):
            target.symlink_to(program.resolve())


def install(run: Run) -> str:
    if not is_checkout(REPO_ROOT):
        raise StepFailed(f"{REPO_ROOT} is not a source checkout (no pyproject.toml)")
    dist = run.work / "dist"
    forget_stale_build()
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--wheel-dir", str(dist), str(REPO_ROOT)],
        capture_output=True,
        text=True,
        check=False,
    )
    if build.returncode != 0:
        raise StepFailed(f"pip wheel failed: {build.stderr.strip()[-OUTPUT_TAIL_CHARS:]}")
    wheel = next(dist.glob("tolu-*.whl"))
    python = run.venv / "bin" / "python"
    fresh = not python.exists()
    if fresh:
        subprocess.run([sys.executable, "-m", "venv", str(run.venv)], check=True)
        if run.options.shared_deps:
            _share_dependencies(run.venv)
    pip = [str(python), "-m", "pip", "install", "-q"]
    reinstall = not fresh or run.options.shared_deps
    if reinstall:
        cmd = [*pip, "--force-reinstall", "--no-deps", str(wheel)]
    else:
        pinned = ["-c", str(CONSTRAINTS)] if CONSTRAINTS.is_file() else []
        cmd = [*pip, *pinned, f"{wheel}{EXTRAS}"]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise StepFailed(f"pip install {wheel.name} failed: {proc.stderr.strip()[-OUTPUT_TAIL_CHARS:]}")
    if fresh:
        check = subprocess.run(
            [str(python), "-c", f"import {PRODUCT_MODULES}"], capture_output=True, text=True, check=False
        )
        if check.returncode != 0:
            raise StepFailed(f"installed tolu does not import: {check.stderr.strip()[-OUTPUT_TAIL_CHARS:]}")
    version = subprocess.run(
        [str(run.venv / "bin" / "tolu"), "--version"], capture_output=True, text=True, check=False
    ).stdout.strip()
    return f"{wheel.name} into {'fresh ' if fresh else 'reused '}{run.venv} ({version})"
