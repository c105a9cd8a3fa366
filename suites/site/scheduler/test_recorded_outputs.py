"""PBS, Cobalt, LSF (and Slurm's parsers) on their tools' recorded outputs (files in recorded/).

No facility is needed: the outputs are what ``qstat -f -x -F json``, ``pbsnodes -a -F json``,
Cobalt's ``qstat --header``, ``bjobs -o ... -json``, ``squeue``, ``sacct -c`` and ``sinfo``
print, fed to the same parsing code the schedulers run.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path

import pytest

from runner.platform.schedulers import BackfillWindow, CommandResult, get
from runner.platform.schedulers.base import BatchScheduler
from runner.states import BatchJobState as B

RECORDED = Path(__file__).parent / "recorded"


def recorded(name: str) -> str:
    return (RECORDED / name).read_text()


def result(stdout: str, returncode: int = 0, stderr: str = "") -> CommandResult:
    return CommandResult(("recorded",), returncode, stdout, stderr)


def scheduler(name: str, tmp_path: Path) -> BatchScheduler:
    return get(name)(tmp_path)


PBS_HOST = "polaris-pbs-01.hsn.cm.polaris.alcf.anl.gov"


def test_pbs_qstat_json(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    pbs = scheduler("pbs", tmp_path)
    ids = [f"{n}.{PBS_HOST}" for n in range(1899, 1907)]
    # qstat exits non-zero when one id is unknown, yet answers for the others.
    out = result(recorded("pbs_qstat_fx_json.json"), 153, recorded("pbs_qstat_stderr.txt"))
    assert pbs.status_ok(out)
    with caplog.at_level(logging.WARNING):
        st = pbs.parse_status_output(out, ids)
    by_num = {k.split(".")[0]: v for k, v in st.items()}
    assert {k: v.state for k, v in by_num.items()} == {
        "1901": B.RUNNING, "1902": B.QUEUED, "1903": B.FINISHED, "1904": B.FAILED, "1905": B.QUEUED,
        "1906": B.UNKNOWN,
    }
    assert "1899" not in by_num  # unknown to qstat: resolved through the exit-code file
    assert by_num["1901"].num_nodes == 2
    assert by_num["1901"].start_time == datetime(2026, 11, 22, 18, 2, 11).astimezone(UTC)
    assert by_num["1903"].exit_code == 0 and by_num["1903"].end_time is not None
    assert by_num["1904"].exit_code == 271 and by_num["1904"].native_state == "F"
    assert "conflict with reservation" in by_num["1902"].reason
    assert "unknown scheduler state 'Z'" in caplog.text


def test_pbs_unreadable_json_is_an_empty_answer(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    pbs = scheduler("pbs", tmp_path)
    broken = recorded("pbs_qstat_fx_json.json")[:500]
    with caplog.at_level(logging.WARNING):
        assert pbs.parse_status_output(result(broken), ["1901"]) == {}
    assert "not readable" in caplog.text


def test_pbs_free_nodes_are_a_backfill_window(tmp_path: Path) -> None:
    pbs = scheduler("pbs", tmp_path)
    assert pbs.parse_backfill_output(recorded("pbs_pbsnodes_json.json")) == [BackfillWindow(num_nodes=3)]
    assert pbs.parse_submit_output(f"1907.{PBS_HOST}\n") == f"1907.{PBS_HOST}"


def test_cobalt_qstat(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    cobalt = scheduler("cobalt", tmp_path)
    with caplog.at_level(logging.WARNING):
        st = cobalt.parse_status_output(result(recorded("cobalt_qstat.txt")), [])
    assert {k: v.state for k, v in st.items()} == {
        "482301": B.RUNNING, "482302": B.QUEUED, "482303": B.QUEUED, "482304": B.RUNNING, "482305": B.UNKNOWN,
    }
    assert st["482301"].num_nodes == 128
    assert "unknown scheduler state 'reserved'" in caplog.text
    assert cobalt.parse_submit_output(recorded("cobalt_qsub.txt")) == "482306"


def test_cobalt_forgets_finished_jobs_which_resolve_from_exit_code_files(tmp_path: Path) -> None:
    cobalt = scheduler("cobalt", tmp_path)
    (tmp_path / "482299.ec").write_text("0\n")
    (tmp_path / "482298.ec").write_text("1\n")
    st = cobalt.resolve_vanished(["482299", "482298", "482297"])
    assert st["482299"].state is B.FINISHED and st["482299"].exit_code == 0
    assert st["482298"].state is B.FAILED and st["482298"].exit_code == 1
    assert st["482297"].state is B.FAILED and "without an exit code" in st["482297"].reason


def test_lsf_bjobs_json(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    lsf = scheduler("lsf", tmp_path)
    out = result(recorded("lsf_bjobs_json.json"), 255)
    assert lsf.status_ok(out)
    with caplog.at_level(logging.WARNING):
        st = lsf.parse_status_output(out, [])
    assert {k: v.state for k, v in st.items()} == {
        "3307451": B.RUNNING, "3307452": B.QUEUED, "3307453": B.FINISHED, "3307454": B.FAILED,
        "3307455": B.UNKNOWN,
    }
    assert "3307450" not in st  # "is not found": left the queue
    assert st["3307454"].exit_code == 143 and "RUNLIMIT" in st["3307454"].reason
    assert st["3307453"].exit_code == 0 and st["3307453"].end_time is not None
    assert st["3307451"].end_time is None  # the "L" stamp is an estimate for a running job
    assert "unknown scheduler state 'BLOCKED'" in caplog.text
    assert lsf.parse_submit_output(recorded("lsf_bsub.txt")) == "3307456"


def test_slurm_parsers(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from runner.platform.schedulers.slurm import Slurm

    slurm = Slurm(tmp_path)
    with caplog.at_level(logging.WARNING):
        st = slurm.parse_status_output(result(recorded("slurm_squeue.txt")), [])
    assert {k: v.state for k, v in st.items()} == {
        "4101": B.RUNNING, "4102": B.QUEUED, "4103": B.FINISHED, "4104": B.FAILED, "4105": B.FAILED,
        "4106": B.UNKNOWN,
    }
    assert st["4101"].end_time is None and st["4101"].start_time is not None
    assert st["4102"].reason == "Priority" and st["4102"].num_nodes == 4
    assert "WEIRD_NEW_STATE" in caplog.text
    hist = slurm.parse_sacct_output(recorded("slurm_sacct_c.txt"), ["4090", "4091", "4092"])
    assert hist["4090"].state is B.FINISHED and hist["4090"].exit_code == 0
    assert hist["4091"].state is B.FAILED and hist["4091"].native_state == "CANCELLED"
    assert "4092" not in hist  # not final in the record: asked again next poll
    assert slurm.parse_backfill_output(recorded("slurm_sinfo.txt")) == [
        BackfillWindow(3, 60.0, "debug"), BackfillWindow(12, None, "preempt"),
    ]
    # "Invalid job id" (every id gone) is an empty answer, not an outage
    assert slurm.status_ok(result("", 1, "slurm_load_jobs error: Invalid job id specified"))
    assert not slurm.status_ok(result("", 1, "slurm_load_jobs error: Unable to contact slurm controller"))
    assert slurm.parse_submit_output("sbatch: warning: x\n4107;cluster\n") == "4107"


@pytest.mark.parametrize("name", ["slurm", "pbs", "cobalt", "lsf"])
def test_submit_output_without_an_id_is_an_error(name: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        scheduler(name, tmp_path).parse_submit_output("something went wrong\n")
