"""Canceling a job, and deleting one: cancel it if it has not finished, then remove its objects and its record."""

from __future__ import annotations

from datetime import timedelta

import structlog
from starlette.concurrency import run_in_threadpool

from services.gateway.domain.announcements import announce_end
from shared.broker import Broker
from shared.errors import NotYet
from shared.models import (
    Job,
    JobState,
    job_event,
    job_prefix,
    state_event,
    utcnow,
)
from shared.storage import ObjectStorage
from shared.store.events import EventStore
from shared.store.jobs import JobStore

log = structlog.get_logger()


async def cancel_job(
    *, jobs: JobStore, events: EventStore, job_id: str, owner: str | None, who: str, broker: Broker | None = None
) -> Job:
    """Cancel: a QUEUED job at once; a RUNNING one is flagged for its runner, which stops the app within seconds.

    A finished job is left as it is: cancelling it is a no-op answered with its state. With ``broker``,
    the end of a job canceled while QUEUED is announced to its webhooks (a job about to be deleted has none).
    """
    job = await jobs.get_job(job_id, owner=owner)
    if job.state is JobState.QUEUED:
        canceled = await jobs.cancel_queued(job_id, owner=owner, reason=f"canceled by {who} before it started")
        if canceled is not None:
            await events.record_events([state_event(canceled)])
            if broker is not None:
                await announce_end(broker, canceled)
            log.info("job_canceled", job_id=job_id, state="QUEUED")
            return canceled
        job = await jobs.get_job(job_id, owner=owner)  # it started meanwhile
    if job.state is JobState.RUNNING:
        flagged = await jobs.request_cancel(job_id, owner=owner)
        if flagged is not None:
            await events.record_events([job_event(flagged, "state", {"state": "RUNNING", "cancel_requested": True})])
            log.info("job_cancel_requested", job_id=job_id)
            return flagged
        job = await jobs.get_job(job_id, owner=owner)  # it finished meanwhile
    return job


PACKAGING_GRACE = timedelta(seconds=60)  # a job that ran is packaged within this long of finishing, or never


def still_busy(job: Job) -> str | None:
    """Why the job's objects may still change, or None once nothing will write under its prefix again."""
    if not job.state.terminal:
        return f"job {job.id} is being stopped (it is {job.state.value}); ask again in a moment"
    being_packaged = job.started is not None and job.archive is None
    if being_packaged and (job.finished is None or utcnow() - job.finished < PACKAGING_GRACE):
        return f"job {job.id} is being packaged; ask again in a moment"
    selecting = [s for s in job.selections.values() if s.archive is None and utcnow() - s.requested < PACKAGING_GRACE]
    if selecting:
        return f"a selective archive of job {job.id} is being packaged; ask again in a moment"
    return None


async def delete_job(
    *, jobs: JobStore, events: EventStore, storage: ObjectStorage, job_id: str, owner: str | None, who: str
) -> None:
    """Cancel the job if needed, then delete every object under ``jobs/<id>/`` and the record.

    A QUEUED job is canceled and deleted at once. A RUNNING one is asked to stop and answered
    409 with Retry-After until its runner has stopped it (within seconds) and the results
    worker has packaged what it left, so nothing writes under the prefix after it is emptied.
    """
    job = await cancel_job(jobs=jobs, events=events, job_id=job_id, owner=owner, who=who)
    reason = still_busy(job)
    if reason is not None:
        raise NotYet(reason, retry_after=2)
    removed = await run_in_threadpool(storage.delete_prefix, job_prefix(job.id))
    await jobs.delete_job(job.id)
    log.info("job_deleted", job_id=job.id, objects=removed)
