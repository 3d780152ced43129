"""GA4GH TES tasks: submitted as quern jobs of the pseudo-app ``TASK_APP``, read back with a TES state, canceled.

A task is checked (services/gateway/domain/task_checks.py) and stored like any other job, on
the same queue, events and dispatch path as a native submission; a job of any other app is no
task, so it is not found here.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum

import structlog

from services.gateway.domain.cancellation import cancel_job
from services.gateway.domain.job_metrics import SUBMITTED
from services.gateway.domain.quotas import Quotas, check_queued_jobs
from services.gateway.domain.submission import DEFAULT_PRIORITY, SubmissionStores, check_queues
from services.gateway.domain.task_checks import (
    MAX_TIMEOUT_SECONDS,
    backend_parameters,
    check_bounds,
    check_images,
    check_input_urls,
    check_layout,
    check_outputs,
    whole_number,
)
from shared.broker import Broker
from shared.errors import NotFound
from shared.models import (
    DEFAULT_QUEUE,
    TASK_APP,
    TASK_APP_VERSION,
    Job,
    JobState,
    TaskPolicy,
    TaskResources,
    TaskSpec,
    TaskTag,
    new_id,
    state_event,
    utcnow,
)
from shared.outbound import Network
from shared.store.database import Page
from shared.store.events import EventStore
from shared.store.jobs import JobStore, TaskFilter

log = structlog.get_logger()
PREEMPTED_REASON = "preempted by shutdown"  # the runner's reason when it hands a run back


class TaskState(StrEnum):
    """A TES task's state (tesState)."""

    UNKNOWN = "UNKNOWN"
    QUEUED = "QUEUED"
    INITIALIZING = "INITIALIZING"
    RUNNING = "RUNNING"
    PAUSED = "PAUSED"
    COMPLETE = "COMPLETE"
    EXECUTOR_ERROR = "EXECUTOR_ERROR"
    SYSTEM_ERROR = "SYSTEM_ERROR"
    CANCELED = "CANCELED"
    PREEMPTED = "PREEMPTED"
    CANCELING = "CANCELING"


def task_state(job: Job) -> TaskState:
    """The TES state of a task's job; shared/store/jobs.py TASK_STATES is the same mapping as Mongo conditions."""
    match job.state:
        case JobState.QUEUED:
            last = job.history[-1] if job.history else None
            handed_back = last is not None and last.to is JobState.QUEUED and last.reason == PREEMPTED_REASON
            return TaskState.PREEMPTED if job.preemptions > 0 and handed_back else TaskState.QUEUED
        case JobState.RUNNING:
            if job.cancel_requested is not None:
                return TaskState.CANCELING
            return TaskState.RUNNING if job.executor_logs else TaskState.INITIALIZING
        case JobState.SUCCEEDED:
            return TaskState.COMPLETE
        case JobState.FAILED:
            return TaskState.EXECUTOR_ERROR if job.exit_code is not None else TaskState.SYSTEM_ERROR
        case JobState.TIMED_OUT:
            return TaskState.EXECUTOR_ERROR
        case JobState.CANCELED:
            return TaskState.CANCELED


def _kept(task: TaskSpec, params: dict[str, str]) -> TaskSpec:
    """The task as stored: only the backend parameters quern reads (TES: unsupported keys are not kept)."""
    if task.resources is None:
        return task
    kept = {key: value for key, value in task.resources.backend_parameters.items() if key.lower() in params}
    resources = TaskResources.model_validate(task.resources.model_dump() | {"backend_parameters": kept})
    return task.model_copy(update={"resources": resources})


async def submit_task(
    *,
    stores: SubmissionStores,
    task: TaskSpec,
    owner: str,
    policy: TaskPolicy,
    networks: tuple[Network, ...],
    timeout_seconds: int,
    wake: Callable[[], None],
    quotas: Quotas,
) -> Job:
    """Check the task, then store it as a job of ``TASK_APP`` for dispatch, as a native submission is."""
    check_bounds(task)
    check_layout(task)
    check_images(task, policy)
    check_outputs(task.outputs, policy)
    params = backend_parameters(task)
    timeout = whole_number(params, "timeout_seconds", 1, MAX_TIMEOUT_SECONDS) or timeout_seconds
    priority = whole_number(params, "priority", 0, 9)
    queue = params.get("queue", DEFAULT_QUEUE)
    await check_input_urls(
        task.inputs, owner=owner, policy=policy, networks=networks, files=stores.files, datasets=stores.datasets
    )
    await check_queues({queue}, owner=owner, queues=stores.queues)
    job = Job(
        id=new_id(),
        owner=owner,
        app=TASK_APP,
        app_version=TASK_APP_VERSION,
        params={},
        inputs={},
        timeout_seconds=timeout,
        created=utcnow(),
        name=task.name,
        priority=DEFAULT_PRIORITY if priority is None else priority,
        queue=queue,
        task=_kept(task, params),
        task_tags=[TaskTag(key=key, value=value) for key, value in task.tags.items()],
    )
    await check_queued_jobs(1, owner=owner, quotas=quotas, jobs=stores.jobs)
    await stores.jobs.insert_job(job)
    await stores.events.record_events([state_event(job)])
    wake()
    SUBMITTED.labels(job.app).inc()
    log.info("task_submitted", job_id=job.id, executors=len(task.executors), queue=job.queue)
    return job


async def get_task(*, jobs: JobStore, task_id: str, owner: str | None) -> Job:
    """The task's job (``owner``'s, unless None); NotFound for another's, or for a job that is no TES task."""
    job = await jobs.get_job(task_id, owner=owner)
    if job.app != TASK_APP:
        raise NotFound(f"no task {task_id}")
    return job


async def list_tasks(
    *, jobs: JobStore, owner: str | None, limit: int, after: str | None, where: TaskFilter
) -> Page[Job]:
    """The owner's tasks, newest first, narrowed by name prefix, TES state and tags."""
    return await jobs.list_tasks(TASK_APP, owner=owner, limit=limit, after=after, where=where)


async def cancel_task(
    *, jobs: JobStore, events: EventStore, broker: Broker, task_id: str, owner: str | None, who: str
) -> Job:
    """Cancel as the native API does: a queued task at once, a running one by asking its runner; an ended one stays."""
    await get_task(jobs=jobs, task_id=task_id, owner=owner)
    return await cancel_job(jobs=jobs, events=events, job_id=task_id, owner=owner, who=who, broker=broker)
