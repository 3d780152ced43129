"""Deleting a job: cancel it if it has not finished, then remove its objects and its record."""

from __future__ import annotations

from datetime import timedelta

import structlog
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from services.gateway.auth import principal
from services.gateway.jobs import cancel_job
from services.gateway.state import deps
from shared.errors import NotYet
from shared.models import Job, job_prefix, utcnow
from shared.storage import ObjectStorage
from shared.store.events import EventStore
from shared.store.jobs import JobStore

log = structlog.get_logger()
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


async def remove(request: Request) -> Response:
    """DELETE /v1/jobs/{job_id}: 204, or 409 (Retry-After) while a running job is being stopped."""
    d = deps(request)
    who = principal(request)
    await delete_job(
        jobs=d.stores.jobs,
        events=d.stores.events,
        storage=d.storage,
        job_id=request.path_params["job_id"],
        owner=who.owner_filter,
        who=who.username,
    )
    return Response(status_code=204)
