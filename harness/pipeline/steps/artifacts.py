"""Step 10: the site's logs and batch scripts, its settings, every ``tolu`` command run and the
jobs' outputs, copied into the run's artifacts (always, also after a failed step).

The state histories were saved from the server before it stopped (``harness.pipeline.history``).
"""

from __future__ import annotations

import shutil
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from harness.pipeline.context import Run

#: larger job output files stay in the work directory
MAX_OUTPUT_BYTES = 1_000_000


def collect(run: Run) -> str:
    out = run.out_dir
    (out / "logs").mkdir(parents=True, exist_ok=True)
    for sub in ("log", "batch"):
        src = run.site_dir / sub
        if src.is_dir():
            shutil.copytree(src, out / "logs" / sub, dirs_exist_ok=True)
    if (run.site_dir / "settings.yml").exists():
        shutil.copy(run.site_dir / "settings.yml", out / "site-settings.yml")
    if (run.work / "commands.log").exists():
        shutil.copy(run.work / "commands.log", out / "logs" / "commands.log")
    outputs = 0
    data = run.site_dir / "data"
    if data.is_dir():
        for path in data.rglob("*"):
            if path.is_file() and path.stat().st_size < MAX_OUTPUT_BYTES:
                dest = out / "job-outputs" / path.relative_to(data)
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(path, dest)
                outputs += 1
    if run.site_id is None or not run.config.exists():
        return f"logs copied ({outputs} job output files); no site, so no state histories"
    return f"logs, {outputs} job output files"
