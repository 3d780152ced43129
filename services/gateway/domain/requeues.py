"""Putting a job back to QUEUED (queue retry, an admin forcing QUEUED, recovery from a dead worker)."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool

from shared.broker import Broker
from shared.models import Job, JobState, StateChange, run_prefix, state_event, utcnow
from shared.storage import ObjectStorage
from shared.store.dispatch import DispatchStore
from shared.store.events import EventStore
from shared.store.jobs import JobStore
from shared.tasks import PACKAGE_RESULTS


async def requeue(
    *, jobs: JobStore, events: EventStore, storage: ObjectStorage, job: Job, by: str, reason: str, attempt: int = 1
) -> Job | None:
    """Put the job back to QUEUED with a history entry, then clear what its last run left in S3.

    None if the job moved meanwhile. Its dependencies are waited on again and the dispatcher
    sends it once it may start. The compare-and-set comes first: until it holds, the last run may
    still be the job's own. Only that run's prefix is deleted, so a next run that started at once
    loses nothing; a stale runner writing on keeps to its own prefix, and its finish is refused.
    A packager still busy with the old run cannot attach that archive, as it no longer matches
    the job's ``finished``.
    """
    change = StateChange.model_validate(
        {"at": utcnow(), "from": job.state, "to": JobState.QUEUED, "by": by, "reason": reason}
    )
    requeued = await jobs.requeue_job(job, change, attempt=attempt)
    if requeued is None:
        return None
    await events.record_events([state_event(requeued)])
    if job.run_token is not None or job.outputs or job.logs or job.archive is not None:
        # A job run before runs had tokens kept its objects under the job's own prefix.
        await run_in_threadpool(storage.delete_prefix, run_prefix(job.id, job.run_token))
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
    """A RUNNING job whose lease lapsed: QUEUED again for its next attempt, or FAILED after the last one.

    None if the job moved meanwhile (its worker came back and finished it, say).
    """
    if job.attempt < max_attempts:
        reason = f"the lease of worker {job.worker} lapsed; attempt {job.attempt + 1} of {max_attempts}"
        return await requeue(
            jobs=jobs, events=events, storage=storage, job=job, by=by, reason=reason, attempt=job.attempt + 1
        )
    reason = f"the lease of worker {job.worker} lapsed during attempt {job.attempt} of {max_attempts}; giving up"
    failed = await dispatch.fail_orphan(job, reason=reason)
    if failed is not None:
        await events.record_events([state_event(failed)])
        await run_in_threadpool(broker.send, PACKAGE_RESULTS, job.id)  # whatever it left is packaged as for any end
    return failed
