"""How the way an app's process ended becomes the job's state and reason."""

from __future__ import annotations

from services.runner.outcomes import outcome_of
from services.runner.processes import Exit
from shared.models import JobState


def test_an_app_over_its_disk_limit_fails_saying_so_whatever_its_exit_code() -> None:
    for ended in (Exit(code=None, over_disk_mb=40), Exit(code=0, over_disk_mb=40)):
        outcome = outcome_of(ended, 60, "tail")
        assert outcome.state is JobState.FAILED
        assert outcome.error is not None and outcome.error.reason == "used more than 40 MB of disk in its directory"
        assert outcome.error.stderr_tail == "tail"


def test_a_cancel_still_reads_as_a_cancel_when_the_directory_was_full() -> None:
    assert outcome_of(Exit(code=None, stopped=True, over_disk_mb=40), 60, "", "canceled").state is JobState.CANCELED
