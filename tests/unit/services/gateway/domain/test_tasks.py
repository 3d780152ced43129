"""A TES task's state from its job, and the path rule every path in its containers must follow."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from services.gateway.domain.task_checks import check_path
from services.gateway.domain.tasks import TaskState, task_state
from shared.errors import Invalid
from shared.models import TASK_APP, ExecutorLog, Job, JobError, JobState, StateChange

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def job(**changes: Any) -> Job:
    base: dict[str, Any] = {
        "id": "01aaaaaaaaaaaaaaaaaaaaaaaa",
        "owner": "u",
        "app": TASK_APP,
        "app_version": "1.1",
        "params": {},
        "inputs": {},
        "timeout_seconds": 60,
        "created": NOW,
    }
    return Job.model_validate(base | changes)


def change(to: JobState, reason: str) -> StateChange:
    return StateChange.model_validate({"at": NOW, "from": JobState.RUNNING, "to": to, "by": "runner", "reason": reason})


EXAMPLES = [
    (job(), TaskState.QUEUED),
    (job(preemptions=1, history=[change(JobState.QUEUED, "preempted by shutdown")]), TaskState.PREEMPTED),
    (job(preemptions=1, history=[change(JobState.QUEUED, "requeued by an admin")]), TaskState.QUEUED),
    (job(history=[change(JobState.QUEUED, "preempted by shutdown")]), TaskState.QUEUED),
    (job(state=JobState.RUNNING), TaskState.INITIALIZING),
    (job(state=JobState.RUNNING, executor_logs=[ExecutorLog(start=NOW)]), TaskState.RUNNING),
    (job(state=JobState.RUNNING, cancel_requested=NOW), TaskState.CANCELING),
    (job(state=JobState.SUCCEEDED), TaskState.COMPLETE),
    (job(state=JobState.FAILED, exit_code=3), TaskState.EXECUTOR_ERROR),
    (job(state=JobState.TIMED_OUT), TaskState.EXECUTOR_ERROR),
    (job(state=JobState.FAILED, error=JobError(reason="input missing")), TaskState.SYSTEM_ERROR),
    (job(state=JobState.CANCELED), TaskState.CANCELED),
]


@pytest.mark.parametrize(("example", "expected"), EXAMPLES)
def test_each_job_state_maps_to_one_tes_state(example: Job, expected: TaskState) -> None:
    assert task_state(example) is expected


@pytest.mark.parametrize("path", ["/", "/data", "/data/x.txt", "/vol/A/", "/data/*.csv"])
def test_absolute_normalized_paths_pass(path: str) -> None:
    check_path(path, "/p")


@pytest.mark.parametrize("path", ["", "data", "./data", "/data/../etc", "/data/./x", "//x", "/a//b", "/a/.."])
def test_relative_or_unnormalized_paths_are_refused(path: str) -> None:
    with pytest.raises(Invalid, match="absolute normalized"):
        check_path(path, "/p")
