"""Step 7: the queue maintainer at depth 1 (one node, mpi mode), short polls, then
``tolu site start``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from harness.pipeline.context import Run


def start_agent(run: Run) -> str:
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

    run.edit_settings(edit)
    out = run.tolu("site", "start", str(run.site_dir), timeout=60).strip()
    return out.splitlines()[-1] if out else "agent started"
