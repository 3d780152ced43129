"""The results service's actors, registered with deliberate limits and retries."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import dramatiq
import structlog

from services.results.archives import build_archive
from services.results.leases import PackagingLease, wait_for_lease
from services.results.metrics import measured
from services.results.webhooks import LEASE_MARGIN_SECONDS, announce, announce_progress, deliver
from shared.broker import Broker
from shared.errors import Conflict, NotFound
from shared.models import Archive, Job, job_event, utcnow
from shared.settings import ResultsSettings
from shared.storage import ObjectStorage
from shared.store.archives import ArchiveStore
from shared.store.events import EventStore
from shared.store.jobs import JobStore
from shared.store.webhooks import WebhookStore
from shared.tasks import ANNOUNCE_END, ANNOUNCE_PROGRESS, DELIVER_WEBHOOK, PACKAGE_RESULTS, PACKAGE_SELECTION
from shared.worker import Drain, Resources

log = structlog.get_logger()
ACTOR_TIME_LIMIT_MS = 6 * 3600 * 1000
CLAIM_TRIES = 3  # reads and claims of one message before its retry: a job changes state only a few times
RETRY_MARGIN_SECONDS = 1.0  # try a held packaging again this long after its lease lapses


async def package_results(
    job_id: str,
    *,
    jobs: JobStore,
    archives: ArchiveStore,
    events: EventStore,
    webhooks: WebhookStore,
    storage: ObjectStorage,
    broker: Broker,
) -> float | None:
    """Package a finished job once, then announce its end to its webhooks; a job deleted meanwhile is left alone.

    The packaging is claimed with a lease first, so a redelivered or duplicated message never builds
    the archive beside another packager. Returns how many seconds to wait before trying again when
    another packager holds the lease (it may have died: then it lapses), else None.
    """
    for _ in range(CLAIM_TRIES):
        try:
            job = await jobs.get_job(job_id)
        except NotFound:
            log.info("job_gone", job_id=job_id)  # deleted by its owner: nothing left to package
            return None
        if job.archive is not None:
            log.info("archive_exists", job_id=job_id)
            await _announce(job, webhooks=webhooks, broker=broker)  # idempotent: a packager may have stopped before it
            return None
        if job.expired is not None or job.expiry_lease is not None:
            log.info("job_expired_unpackaged", job_id=job_id)  # its retention ran out: nothing is kept any more
            await _announce(job, webhooks=webhooks, broker=broker)  # its end is still news to its webhooks
            return None
        if not job.state.terminal:
            raise Conflict(f"job {job_id} is {job.state.value}; it is packaged once it finishes")
        if (wait := wait_for_lease(job)) is not None:
            log.info("packaging_held", job_id=job_id, seconds=round(wait, 3))
            return wait
        lease = await PackagingLease.take(archives, job)
        if lease is None:
            continue  # taken by another packager, or packaged, expired or run again since the read: read again
        key, packaged = await _package(lease, archives=archives, events=events, storage=storage)
        if packaged is None:
            await _drop_if_gone(job_id, key, jobs=jobs, storage=storage)
        else:
            await _announce(packaged, webhooks=webhooks, broker=broker)
        return None
    raise Conflict(f"job {job_id} kept changing while its packaging was claimed")


async def _package(
    lease: PackagingLease, *, archives: ArchiveStore, events: EventStore, storage: ObjectStorage
) -> tuple[str, Job | None]:
    """Build the archive of the leased job's run and attach it: its key, and the job packaged (None if it raced)."""
    job = lease.job
    key, size, sha256 = await lease.hold_while(measured("run", asyncio.to_thread(build_archive, storage, job)))
    archive = Archive(key=key, size=size, sha256=sha256, created=utcnow())
    packaged = await archives.set_archive(job.id, archive, finished=job.finished, lease=lease.until)
    if packaged is None:
        # The lease lapsed and another packager took it (the bytes are identical), or the job was retried and this
        # run's archive is stale, or it was deleted or expired meanwhile: then the archive just written must not
        # outlive that deletion.
        log.info("archive_raced", job_id=job.id)
        await lease.release()
        return key, None
    await events.record_events([job_event(job, "archive", {"size": size, "sha256": sha256})])
    log.info("job_packaged", job_id=job.id, size=size, sha256=sha256, members=len(job.outputs) + len(job.logs) + 1)
    return key, packaged


async def _drop_if_gone(job_id: str, key: str, *, jobs: JobStore, storage: ObjectStorage) -> None:
    """Delete an archive just written if its job was deleted, or is being or was expired, meanwhile."""
    try:
        current = await jobs.get_job(job_id)
    except NotFound:
        current = None
    if current is None or current.expired is not None or current.expiry_lease is not None:
        await asyncio.to_thread(storage.delete, key)


def _sender(broker: Broker) -> Callable[[str], Awaitable[None]]:
    async def send(delivery_id: str) -> None:
        await asyncio.to_thread(broker.send, DELIVER_WEBHOOK, delivery_id)

    return send


async def _announce(job: Job, *, webhooks: WebhookStore, broker: Broker) -> None:
    await announce(job, webhooks=webhooks, send=_sender(broker))


async def announce_job_progress(
    job_id: str, event_id: str, *, jobs: JobStore, webhooks: WebhookStore, broker: Broker
) -> None:
    """Announce a running job's latest progress to the receivers that asked for it; a job gone is left alone."""
    try:
        job = await jobs.get_job(job_id)
    except NotFound:
        log.info("job_gone", job_id=job_id)
        return
    await announce_progress(job, event_id, webhooks=webhooks, send=_sender(broker))


async def announce_job_end(job_id: str, *, jobs: JobStore, webhooks: WebhookStore, broker: Broker) -> None:
    """Announce the end of a job no packager will see (it never ran, or its runner archived it); a job deleted or
    run again is left alone."""
    try:
        job = await jobs.get_job(job_id)
    except NotFound:
        log.info("job_gone", job_id=job_id)
        return
    if job.state.terminal:
        await _announce(job, webhooks=webhooks, broker=broker)


async def package_selection(
    job_id: str, digest: str, *, jobs: JobStore, archives: ArchiveStore, storage: ObjectStorage
) -> None:
    """Package one selective archive of a finished job once; gone or packaged already, it is left alone."""
    try:
        job = await jobs.get_job(job_id)
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
    building = asyncio.to_thread(build_archive, storage, job, selection=(digest, selection.include))
    key, size, sha256 = await measured("selection", building)
    archive = Archive(key=key, size=size, sha256=sha256, created=utcnow())
    if await archives.set_selection_archive(job_id, digest, archive, finished=job.finished) is None:
        # Another packager won (identical bytes), or the job was retried, deleted or expired meanwhile.
        await _drop_if_gone(job_id, key, jobs=jobs, storage=storage)
        log.info("selection_raced", job_id=job_id, digest=digest)
        return
    log.info("selection_packaged", job_id=job_id, digest=digest, size=size, sha256=sha256, include=selection.include)


def register(broker: Broker, resources: Resources) -> Drain | None:
    """Declare the packaging actors and the webhook ones (deliver, announce an end, announce progress).

    Packaging retries five times with backoff when a backend fails, and once another packager's lease would have
    lapsed when it holds the job; webhook deliveries follow their own schedule.

    No drain: an archive in progress is finished at shutdown (or redone by the redelivered message, once the
    stopped packager's lease lapsed).
    """

    async def package(job_id: str) -> None:
        with structlog.contextvars.bound_contextvars(job_id=job_id):
            stores = resources.stores
            held = await package_results(
                job_id,
                jobs=stores.jobs,
                archives=stores.archives,
                events=stores.events,
                webhooks=stores.webhooks,
                storage=resources.storage,
                broker=broker,
            )
        if held is not None:
            # Another packager holds the job: look again once its lease would have lapsed, should it have died.
            # A live one attaches the archive meanwhile, and this message then finds it there.
            raise dramatiq.Retry(delay=int((held + RETRY_MARGIN_SECONDS) * 1000))

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
            stores = resources.stores
            await package_selection(
                job_id, digest, jobs=stores.jobs, archives=stores.archives, storage=resources.storage
            )

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

    settings = resources.settings
    if not isinstance(settings, ResultsSettings):
        raise TypeError("the results service runs with ResultsSettings")

    async def deliver_webhook(delivery_id: str) -> None:
        with structlog.contextvars.bound_contextvars(delivery_id=delivery_id):
            stores = resources.stores
            delay = await deliver(delivery_id, webhooks=stores.webhooks, jobs=stores.jobs, settings=settings)
        if delay is not None:
            raise dramatiq.Retry(delay=int(delay * 1000))  # the next attempt, on the delivery's own schedule

    # Retries: the attempts themselves, plus a few for Mongo not answering (those back off 1 s to 1 min).
    dramatiq.actor(
        broker=broker.dramatiq,
        actor_name=DELIVER_WEBHOOK.actor,
        queue_name=broker.queue(DELIVER_WEBHOOK),
        max_retries=settings.webhook_max_attempts + 5,
        min_backoff=1000,
        max_backoff=60000,
        time_limit=int((settings.webhook_timeout_seconds + LEASE_MARGIN_SECONDS) * 1000),
        throws=(NotFound,),
    )(deliver_webhook)

    async def announce_end(job_id: str) -> None:
        with structlog.contextvars.bound_contextvars(job_id=job_id):
            stores = resources.stores
            await announce_job_end(job_id, jobs=stores.jobs, webhooks=stores.webhooks, broker=broker)

    dramatiq.actor(
        broker=broker.dramatiq,
        actor_name=ANNOUNCE_END.actor,
        queue_name=broker.queue(ANNOUNCE_END),
        max_retries=5,
        min_backoff=2000,
        max_backoff=300000,
        time_limit=60_000,
        throws=(NotFound,),
    )(announce_end)

    async def progress(job_id: str, event_id: str) -> None:
        with structlog.contextvars.bound_contextvars(job_id=job_id):
            stores = resources.stores
            await announce_job_progress(job_id, event_id, jobs=stores.jobs, webhooks=stores.webhooks, broker=broker)

    # Few retries: a progress report held up for long is stale, and the next one replaces it.
    dramatiq.actor(
        broker=broker.dramatiq,
        actor_name=ANNOUNCE_PROGRESS.actor,
        queue_name=broker.queue(ANNOUNCE_PROGRESS),
        max_retries=2,
        min_backoff=1000,
        max_backoff=10000,
        time_limit=60_000,
        throws=(NotFound,),
    )(progress)
    return None
