"""How a run ended: the terminal state to record (or why it was handed back), and what it delivered."""

from __future__ import annotations

from dataclasses import dataclass, field

from services.runner.processes import Exit
from services.runner.slots import LEASE_LOST, SHUTDOWN
from shared.models import JobError, JobState, OutputFile
from shared.models.tasks import OutputFileLog


@dataclass(frozen=True)
class Outcome:
    """How a run ended: a terminal state to record, or ``handed_back`` (why the run was given up instead)."""

    state: JobState
    exit_code: int | None = None
    error: JobError | None = None
    outputs: list[OutputFile] = field(default_factory=list)
    handed_back: str | None = None
    output_logs: list[OutputFileLog] = field(default_factory=list)  # a TES task's delivered files


@dataclass
class Doing:
    """What a run is doing now, so a failure of quern's own can say what it could not do."""

    what: str


def outcome_of(ended: Exit, timeout: int, stderr_tail: str, stop_reason: str | None = None) -> Outcome:
    """The run's outcome from how its process ended (and why it was stopped, if it was)."""
    if ended.stopped and stop_reason in (SHUTDOWN, LEASE_LOST):
        return Outcome(JobState.QUEUED, handed_back=stop_reason)
    if ended.stopped:
        return Outcome(
            JobState.CANCELED, error=JobError(reason="canceled on request while it ran", stderr_tail=stderr_tail)
        )
    if ended.over_disk_mb is not None:
        reason = f"used more than {ended.over_disk_mb} MB of disk in its directory"
        return Outcome(JobState.FAILED, error=JobError(reason=reason, stderr_tail=stderr_tail))
    if ended.timed_out:
        reason = f"killed after the {timeout} s time limit"
        return Outcome(JobState.TIMED_OUT, error=JobError(reason=reason, stderr_tail=stderr_tail))
    if ended.code == 0:
        return Outcome(JobState.SUCCEEDED, exit_code=0)
    code = ended.code if ended.code is not None else -1
    reason = f"killed by signal {-code}" if code < 0 else f"exited with code {code}"
    return Outcome(JobState.FAILED, exit_code=ended.code, error=JobError(reason=reason, stderr_tail=stderr_tail))
