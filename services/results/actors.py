"""The results service's actors, registered with deliberate limits and retries."""

from __future__ import annotations

import asyncio

import dramatiq
import structlog

from services.results.archives import build_archive
from shared.broker import Broker
from shared.errors import Conflict, NotFound
from shared.models import Archive, job_event, utcnow
from shared.mongo import MongoStore
from shared.storage import ObjectStorage
from shared.tasks import PACKAGE_RESULTS, PACKAGE_SELECTION
from shared.worker import Drain, Resources

log = structlog.get_logger()
ACTOR_TIME_LIMIT_MS = 6 * 3600 * 1000


async def package_results(job_id: str, *, store: MongoStore, storage: ObjectStorage) -> None:
    """Package a finished job once; a job already packaged, or deleted meanwhile, is left alone."""
    try:
        job = await store.get_job(job_id)
    except NotFound:
        log.info("job_gone", job_id=job_id)  # deleted by its owner: nothing left to package
        return
    if job.archive is not None:
        log.info("archive_exists", job_id=job_id)
        return
    if job.expired is not None or job.expiry_lease is not None:
        log.info("job_expired_unpackaged", job_id=job_id)  # its retention ran out: nothing is kept any more
        return
    if not job.state.terminal:
        raise Conflict(f"job {job_id} is {job.state.value}; it is packaged once it finishes")
    key, size, sha256 = await asyncio.to_thread(build_archive, storage, job)
    archive = Archive(key=key, size=size, sha256=sha256, created=utcnow())
    if await store.set_archive(job_id, archive, finished=job.finished) is None:
        # Another packager won (the bytes are identical), or the job was retried and this run's archive is stale,
        # or it expired meanwhile: then the archive just written must not outlive the sweeper's deletion.
        log.info("archive_raced", job_id=job_id)
        if (await store.get_job(job_id)).expired is not None:
            await asyncio.to_thread(storage.delete, key)
        return
    await store.record_events([job_event(job, "archive", {"size": size, "sha256": sha256})])
    log.info("job_packaged", job_id=job_id, size=size, sha256=sha256, members=len(job.outputs) + len(job.logs) + 1)


async def package_selection(job_id: str, digest: str, *, store: MongoStore, storage: ObjectStorage) -> None:
    """Package one selective archive of a finished job once; gone or packaged already, it is left alone."""
    try:
        job = await store.get_job(job_id)
    except NotFound:
        log.info("job_gone", job_id=job_id)
        return
    if job.expired is not None or job.expiry_lease is not None:
        log.info("job_expired_unpackaged", job_id=job_id, digest=digest)
        return
    selection = job.selections.get(digest)
    if selection is None or selection.archive is not None:
        log.info("selection_settled", job_id=job_id, digest=digest, packaged=selection is not None)
        return
    key, size, sha256 = await asyncio.to_thread(build_archive, storage, job, selection=(digest, selection.include))
    archive = Archive(key=key, size=size, sha256=sha256, created=utcnow())
    if await store.set_selection_archive(job_id, digest, archive, finished=job.finished) is None:
        # Another packager won (identical bytes), or the job was retried, deleted or expired meanwhile.
        try:
            current = await store.get_job(job_id)
        except NotFound:
            current = None
        if current is None or current.expired is not None:
            await asyncio.to_thread(storage.delete, key)  # leave nothing under a deleted or expired job's prefix
        log.info("selection_raced", job_id=job_id, digest=digest)
        return
    log.info("selection_packaged", job_id=job_id, digest=digest, size=size, sha256=sha256, include=selection.include)


def register(broker: Broker, resources: Resources) -> Drain | None:
    """Declare ``package_results`` and ``package_selection``: five retries with backoff when a backend fails.

    No drain: an archive in progress is finished at shutdown (or redone by the redelivered message).
    """

    async def package(job_id: str) -> None:
        with structlog.contextvars.bound_contextvars(job_id=job_id):
            await package_results(job_id, store=resources.store, storage=resources.storage)

    dramatiq.actor(
        broker=broker.dramatiq,
        actor_name=PACKAGE_RESULTS.actor,
        queue_name=broker.queue(PACKAGE_RESULTS),
        max_retries=5,
        min_backoff=2000,
        max_backoff=300000,
        time_limit=ACTOR_TIME_LIMIT_MS,
        throws=(NotFound,),
    )(package)

    async def package_some(job_id: str, digest: str) -> None:
        with structlog.contextvars.bound_contextvars(job_id=job_id):
            await package_selection(job_id, digest, store=resources.store, storage=resources.storage)

    dramatiq.actor(
        broker=broker.dramatiq,
        actor_name=PACKAGE_SELECTION.actor,
        queue_name=broker.queue(PACKAGE_SELECTION),
        max_retries=5,
        min_backoff=2000,
        max_backoff=300000,
        time_limit=ACTOR_TIME_LIMIT_MS,
        throws=(NotFound,),
    )(package_some)
    return None
