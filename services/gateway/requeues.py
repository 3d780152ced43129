"""Putting a job back to QUEUED (queue retry and recover, an admin forcing QUEUED), as if it were new."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool

from services.gateway.job_deletion import job_prefix
from shared.models import Job, JobState, StateChange, state_event, utcnow
from shared.mongo import MongoStore
from shared.storage import ObjectStorage


async def requeue(*, store: MongoStore, storage: ObjectStorage, job: Job, by: str, reason: str) -> Job | None:
    """Clear what the job's last run left in S3, then put it back to QUEUED with a history entry.

    None if the job moved meanwhile. Its dependencies are waited on again and the dispatcher
    sends it once it may start; a packager still busy with the old run cannot attach that
    archive, as it no longer matches the job's ``finished``.
    """
    await run_in_threadpool(storage.delete_prefix, job_prefix(job.id))
    change = StateChange.model_validate(
        {"at": utcnow(), "from": job.state, "to": JobState.QUEUED, "by": by, "reason": reason}
    )
    requeued = await store.requeue_job(job, change)
    if requeued is not None:
        await store.record_events([state_event(requeued)])
    return requeued
