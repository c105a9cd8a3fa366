"""Launcher tests on real mpiexec: fake multi-node allocations through Hydra's fork launcher."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from harness.fixtures_site import SiteHandle

FakeNodes = Callable[..., Path]


@pytest.fixture
def fake_nodes(tolu_site: SiteHandle, tmp_path: Path) -> FakeNodes:
    """``fake_nodes(3, cpus=2)``: a hostfile of made-up node names, and site settings that
    run "remote" hosts locally (``mpiexec -launcher fork``) — real MPI placement, one machine."""

    def make(count: int, *, cpus: int = 2, **launcher: object) -> Path:
        hostfile = tmp_path / f"hosts-{count}"
        hostfile.write_text("".join(f"fake{i:02d}:{cpus}\n" for i in range(1, count + 1)))
        tolu_site.write_settings(
            launcher={
                "mpi_launcher": "mpich",
                "mpiexec": "",
                "mpi_args": ["-launcher", "fork"],
                "node": {"cpus": cpus, "gpus": 0},
                "node_discovery": "hostfile",
                "hostfile": str(hostfile),
                "heartbeat_sec": 1.0,
                "report_interval_sec": 0.2,
                **launcher,
            }
        )
        return hostfile

    return make
