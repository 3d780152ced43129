"""A task's job as a ``tesTask`` in one of the three views TES defines.

MINIMAL is the id and state. BASIC adds the task as submitted and its log, without executors'
stdout and stderr, inputs' inline content and system logs. FULL is everything.
"""

from __future__ import annotations

from datetime import UTC, datetime

from services.gateway.domain.tasks import TaskState, task_state
from services.gateway.surfaces.tes.models import (
    tesExecutor,
    tesExecutorLog,
    tesInput,
    tesOutput,
    tesOutputFileLog,
    tesResources,
    tesTask,
    tesTaskLog,
    tesView,
)
from shared.models import Job


def rfc3339(moment: datetime | None) -> str | None:
    """``moment`` in RFC 3339 (UTC, ``Z``); stored times without a zone are UTC."""
    if moment is None:
        return None
    aware = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    return aware.isoformat().replace("+00:00", "Z")


def _log(job: Job, state: TaskState, *, full: bool) -> tesTaskLog:
    executors = [
        tesExecutorLog(
            start_time=rfc3339(one.start),
            end_time=rfc3339(one.end),
            exit_code=one.exit_code,
            stdout=one.stdout if full else None,
            stderr=one.stderr if full else None,
        )
        for one in job.executor_logs
        if one.exit_code is not None  # tesExecutorLog requires an exit code: a running executor has none yet
    ]
    system = [job.error.reason] if state is TaskState.SYSTEM_ERROR and job.error is not None else []
    return tesTaskLog(
        logs=executors,
        start_time=rfc3339(job.started),
        end_time=rfc3339(job.finished),
        outputs=[tesOutputFileLog(url=o.url, path=o.path, size_bytes=str(o.size_bytes)) for o in job.output_logs],
        system_logs=system if full else None,
    )


def render_task(job: Job, view: tesView) -> tesTask:
    """The task in ``view``."""
    state = task_state(job)
    if view is tesView.MINIMAL or job.task is None:
        return tesTask(id=job.id, state=state.value)
    full, task = view is tesView.FULL, job.task
    inputs = [
        tesInput.model_validate(one.model_dump(exclude={"content"} if not full else set())) for one in task.inputs
    ]
    return tesTask(
        id=job.id,
        state=state.value,
        name=task.name,
        description=task.description,
        inputs=inputs,
        outputs=[tesOutput.model_validate(one.model_dump()) for one in task.outputs],
        resources=None if task.resources is None else tesResources.model_validate(task.resources.model_dump()),
        executors=[tesExecutor.model_validate(one.model_dump()) for one in task.executors],
        volumes=task.volumes,
        tags=task.tags,
        logs=[_log(job, state, full=full)] if job.started is not None or job.state.terminal else [],
        creation_time=rfc3339(job.created),
    )
