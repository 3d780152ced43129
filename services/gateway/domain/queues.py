"""A user's named queues: deleting one, retrying its failed jobs, recovering its jobs from dead workers."""

from __future__ import annotations

from typing import Any

import structlog
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from services.gateway.domain.cancellation import cancel_job, still_busy
from services.gateway.domain.requeues import requeue
from shared.errors import Conflict, NotYet
from shared.models import DEFAULT_QUEUE, JobState, Queue, job_prefix
from shared.storage import ObjectStorage
from shared.store.events import EventStore
from shared.store.jobs import JobStore
from shared.store.queues import QueueStore
from shared.store.workers import WorkerStore

log = structlog.get_logger()
RETRYABLE = (JobState.FAILED, JobState.TIMED_OUT, JobState.CANCELED)


class RetryRequest(BaseModel):
    """The optional body of POST /v1/queues/{id}/retry."""

    model_config = ConfigDict(extra="forbid")
    states: list[JobState] = Field(default=[JobState.FAILED], min_length=1, description="FAILED, TIMED_OUT, CANCELED")
    limit: int = Field(default=1000, ge=1, le=10_000, description="at most this many jobs per call")


async def delete_queue(
    *,
    queues: QueueStore,
    jobs: JobStore,
    events: EventStore,
    storage: ObjectStorage,
    queue: Queue,
    force: bool,
    who: str,
) -> None:
    """Delete an empty queue; with ``force``, its jobs too (409 while running ones are being stopped).

    Jobs that never started left nothing in S3 and go in one delete; the others are canceled if
    needed, and deleted with their objects once nothing writes under their prefix any more.
    """
    if queue.name == DEFAULT_QUEUE:
        raise Conflict("the default queue cannot be deleted")
    job_ids = await queues.queue_job_ids(queue)
    if job_ids and not force:
        raise Conflict(f"queue {queue.name!r} holds {len(job_ids)} jobs; delete them first, or pass force=true")
    await queues.delete_unstarted_jobs(owner=queue.owner, queue=queue.name)
    remaining = await queues.queue_job_ids(queue)
    canceled = [
        await cancel_job(jobs=jobs, events=events, job_id=job_id, owner=queue.owner, who=who) for job_id in remaining
    ]
    busy = [job.id for job in canceled if still_busy(job) is not None]
    if busy:
        raise NotYet(f"{len(busy)} jobs of queue {queue.name!r} are being stopped; ask again", retry_after=2)
    for job in canceled:
        if job.started is not None:
            await run_in_threadpool(storage.delete_prefix, job_prefix(job.id))
    await jobs.delete_jobs([job.id for job in canceled])
    await queues.delete_queue(queue.id)
    log.info("queue_deleted", queue_id=queue.id, jobs=len(job_ids))


async def retry_jobs(
    *,
    queues: QueueStore,
    jobs: JobStore,
    events: EventStore,
    storage: ObjectStorage,
    queue: Queue,
    wanted: RetryRequest,
    by: str,
) -> dict[str, Any]:
    """Put the queue's jobs in ``wanted.states`` back to QUEUED; ones still being packaged are skipped."""
    ids = await queues.queue_job_ids(queue, states=wanted.states)
    retried: list[str] = []
    skipped: list[str] = []
    for job_id in ids[: wanted.limit]:
        job = await jobs.get_job(job_id)
        if still_busy(job) is not None:
            skipped.append(job_id)
            continue
        reason = f"retried in queue {queue.name}"
        done = await requeue(jobs=jobs, events=events, storage=storage, job=job, by=by, reason=reason)
        (retried if done is not None else skipped).append(job_id)
    log.info("queue_retried", queue_id=queue.id, retried=len(retried), skipped=len(skipped))
    return {"retried": retried, "skipped": skipped, "more": len(ids) > wanted.limit}


async def recover_jobs(
    *,
    workers: WorkerStore,
    queues: QueueStore,
    jobs: JobStore,
    events: EventStore,
    storage: ObjectStorage,
    queue: Queue,
    heartbeat_seconds: float,
    by: str,
) -> dict[str, Any]:
    """Put the queue's RUNNING jobs whose worker is gone (no heartbeat) back to QUEUED."""
    live = {worker.id for worker in await workers.list_workers() if worker.alive(heartbeat_seconds)}
    recovered = []
    for job_id in await queues.queue_job_ids(queue, states=[JobState.RUNNING]):
        job = await jobs.get_job(job_id)
        if job.worker in live:
            continue
        reason = f"recovered: worker {job.worker} is gone"
        requeued = await requeue(
            jobs=jobs, events=events, storage=storage, job=job, by=by, reason=reason, attempt=job.attempt + 1
        )
        if requeued is not None:
            recovered.append(job_id)
    log.info("queue_recovered", queue_id=queue.id, recovered=len(recovered))
    return {"recovered": recovered}
