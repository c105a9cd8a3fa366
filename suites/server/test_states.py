"""The transition table itself (the server's enforcement is tested over HTTP elsewhere)."""

import pytest

from runner.states import FINAL, RUNNABLE, TRANSITIONS, JobState, TransitionError, check


def test_every_state_has_a_row() -> None:
    assert set(TRANSITIONS) == set(JobState)


def test_job_finished_is_terminal() -> None:
    assert TRANSITIONS[JobState.JOB_FINISHED] == frozenset()


@pytest.mark.parametrize("state", sorted(set(JobState) - FINAL, key=str))
def test_every_unfinished_state_can_be_killed(state: JobState) -> None:
    assert JobState.KILLED in TRANSITIONS[state]


def test_runnable_states_lead_to_running() -> None:
    for state in RUNNABLE:
        assert JobState.RUNNING in TRANSITIONS[state]


def test_forbidden_transition_names_job_and_states() -> None:
    with pytest.raises(TransitionError, match=r"job 7: cannot go from CREATED to RUN_DONE"):
        check(7, JobState.CREATED, JobState.RUN_DONE)
