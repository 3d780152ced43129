"""The scheduler's sweeps: batches abandoned while stored, run_job messages gone missing, uploads expired
unfinished, and the objects of datasets whose creation died part-way.
"""

from __future__ import annotations

from datetime import timedelta

import structlog

from services.gateway.domain.datasets import sweep_abandoned_drafts
from services.gateway.domain.uploads import sweep_expired
from shared.errors import AppError
from shared.models import utcnow
from shared.storage import ObjectStorage
from shared.store.batches import BatchStore
from shared.store.datasets import DatasetStore
from shared.store.dispatch import DispatchStore
from shared.store.files import FileStore

log = structlog.get_logger()
ABANDONED_BATCH_SECONDS = 600
STALE_DISPATCH_SECONDS = 300


async def sweep_abandoned_batches(*, batches: BatchStore) -> None:
    """Delete batches whose gateway died while storing them: they were never acknowledged to anyone."""
    before = utcnow() - timedelta(seconds=ABANDONED_BATCH_SECONDS)
    for batch_id in await batches.uncommitted_batches(created_before=before):
        await batches.delete_batch(batch_id)
        log.warning("batch_abandoned", batch=batch_id)


async def sweep_lost_messages(*, dispatch: DispatchStore) -> None:
    """Send again the jobs sent ``STALE_DISPATCH_SECONDS`` ago and still not claimed: their message may be lost.

    Lost (dead-lettered after its retries, purged, or taken by a runner that died before its claim)
    or only waiting behind a backlog: the two cannot be told apart, so the job is sent again
    whatever the queue's depth. The runner's claim is a compare-and-set, so whichever message comes
    second is dropped for the cost of one read.
    """
    before = utcnow() - timedelta(seconds=STALE_DISPATCH_SECONDS)
    if taken_back := await dispatch.undispatch_stale(dispatched_before=before):
        log.warning("lost_messages_resent", jobs=taken_back)


async def sweep_expired_uploads(*, files: FileStore, storage: ObjectStorage) -> None:
    """Discard presigned uploads that expired unfinished; a backend outage only delays it to the next sweep."""
    try:
        await sweep_expired(files=files, storage=storage)
    except AppError as exc:
        log.warning("upload_sweep_failed", detail=exc.detail)


async def sweep_abandoned_datasets(*, datasets: DatasetStore, storage: ObjectStorage) -> None:
    """Delete the objects of datasets whose gateway died while creating them; an outage only delays it."""
    try:
        await sweep_abandoned_drafts(datasets=datasets, storage=storage)
    except AppError as exc:
        log.warning("dataset_sweep_failed", detail=exc.detail)
