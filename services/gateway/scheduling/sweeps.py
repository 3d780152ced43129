"""The scheduler's sweeps: batches abandoned while stored, run_job messages gone missing, uploads expired unfinished."""

from __future__ import annotations

from datetime import timedelta

import structlog
from starlette.concurrency import run_in_threadpool

from services.gateway.domain.uploads import sweep_expired
from shared.broker import Broker
from shared.errors import AppError
from shared.models import utcnow
from shared.storage import ObjectStorage
from shared.store.batches import BatchStore
from shared.store.dispatch import DispatchStore
from shared.store.files import FileStore
from shared.tasks import RUN_JOB

log = structlog.get_logger()
ABANDONED_BATCH_SECONDS = 600
STALE_DISPATCH_SECONDS = 300


async def sweep_abandoned_batches(*, batches: BatchStore) -> None:
    """Delete batches whose gateway died while storing them: they were never acknowledged to anyone."""
    before = utcnow() - timedelta(seconds=ABANDONED_BATCH_SECONDS)
    for batch_id in await batches.uncommitted_batches(created_before=before):
        await batches.delete_batch(batch_id)
        log.warning("batch_abandoned", batch=batch_id)


async def sweep_lost_messages(*, dispatch: DispatchStore, broker: Broker) -> None:
    """Send again the jobs whose message went missing (dead-lettered after its retries, or purged).

    Only while no ``run_job`` message waits in RabbitMQ: then a job sent minutes ago and still
    not claimed has no message left. Should one turn up after all, the claim drops the duplicate.
    """
    depth = await run_in_threadpool(broker.queue_stats, [RUN_JOB])
    if any(stats["messages"] for stats in depth.values()):
        return
    before = utcnow() - timedelta(seconds=STALE_DISPATCH_SECONDS)
    if taken_back := await dispatch.undispatch_stale(dispatched_before=before):
        log.warning("lost_messages_resent", jobs=taken_back)


async def sweep_expired_uploads(*, files: FileStore, storage: ObjectStorage) -> None:
    """Discard presigned uploads that expired unfinished; a backend outage only delays it to the next sweep."""
    try:
        await sweep_expired(files=files, storage=storage)
    except AppError as exc:
        log.warning("upload_sweep_failed", detail=exc.detail)
