"""Putting a job back to QUEUED (queue retry, an admin forcing QUEUED, recovery from a dead worker)."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool

from shared.broker import Broker
from shared.models import Job, JobState, StateChange, job_prefix, state_event, utcnow
from shared.storage import ObjectStorage
from shared.store.dispatch import DispatchStore
from shared.store.events import EventStore
from shared.store.jobs import JobStore
from shared.tasks import PACKAGE_RESULTS


async def requeue(
    *, jobs: JobStore, events: EventStore, storage: ObjectStorage, job: Job, by: str, reason: str, attempt: int = 1
) -> Job | None:
    """Clear what the job's last run left in S3, then put it back to QUEUED with a history entry.

    None if the job moved meanwhile. Its dependencies are waited on again and the dispatcher
    sends it once it may start; a packager still busy with the old run cannot attach that
    archive, as it no longer matches the job's ``finished``.
    """
    await run_in_threadpool(storage.delete_prefix, job_prefix(job.id))
    change = StateChange.model_validate(
        {"at": utcnow(), "from": job.state, "to": JobState.QUEUED, "by": by, "reason": reason}
    )
    requeued = await jobs.requeue_job(job, change, attempt=attempt)
    if requeued is not None:
        await events.record_events([state_event(requeued)])
    return requeued


async def recover(
    *,
    jobs: JobStore,
    events: EventStore,
    dispatch: DispatchStore,
    storage: ObjectStorage,
    broker: Broker,
    job: Job,
    by: str,
    max_attempts: int,
) -> Job | None:
    """A RUNNING job whose worker is gone: QUEUED again for its next attempt, or FAILED after the last one.

    None if the job moved meanwhile (its worker came back and finished it, say).
    """
    if job.attempt < max_attempts:
        reason = f"worker {job.worker} stopped heartbeating; attempt {job.attempt + 1} of {max_attempts}"
        return await requeue(
            jobs=jobs, events=events, storage=storage, job=job, by=by, reason=reason, attempt=job.attempt + 1
        )
    reason = f"worker {job.worker} stopped heartbeating during attempt {job.attempt} of {max_attempts}; giving up"
    failed = await dispatch.fail_orphan(job, reason=reason)
    if failed is not None:
        await events.record_events([state_event(failed)])
        await run_in_threadpool(broker.send, PACKAGE_RESULTS, job.id)  # whatever it left is packaged as for any end
    return failed
