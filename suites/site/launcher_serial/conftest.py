"""Serial-mode tests: one rank alone, or rank 0 plus one worker rank per (fake) node."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from harness.fixtures_site import SiteHandle

SerialSite = Callable[..., Path | None]


@pytest.fixture
def serial_site(tolu_site: SiteHandle, tmp_path: Path) -> SerialSite:
    """``serial_site(nodes=0, cpus=2)``: settings for serial mode on this host alone
    (``nodes=0``: one rank does everything) or on ``nodes`` made-up node names run
    locally by ``mpiexec -launcher fork`` (``nodes + 1`` ranks); returns the hostfile."""

    def make(nodes: int = 0, *, cpus: int = 2, **launcher: object) -> Path | None:
        hostfile = None
        if nodes:
            hostfile = tmp_path / f"hosts-{nodes}"
            hostfile.write_text("".join(f"fake{i:02d}:{cpus}\n" for i in range(1, nodes + 1)))
        tolu_site.write_settings(
            launcher={
                "mpi_launcher": "mpich",
                "mpiexec": "",
                "mpi_args": ["-launcher", "fork"] if nodes else [],
                "node": {"cpus": cpus, "gpus": 0},
                "node_discovery": "hostfile" if nodes else "local",
                "hostfile": str(hostfile or ""),
                "heartbeat_sec": 1.0,
                "report_interval_sec": 0.2,
                **launcher,
            }
        )
        return hostfile

    return make
