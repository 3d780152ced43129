"""Periodic sweeps: expired presigned uploads are discarded."""

from __future__ import annotations

import asyncio

import structlog

from services.gateway.domain.uploads import sweep_expired
from shared.errors import AppError
from shared.storage import ObjectStorage
from shared.store.files import FileStore

log = structlog.get_logger()


async def sweep_forever(*, files: FileStore, storage: ObjectStorage, every_seconds: float) -> None:
    """Sweep expired uploads now and then, for as long as the gateway runs; a backend outage only delays it."""
    while True:
        try:
            await sweep_expired(files=files, storage=storage)
        except AppError as exc:
            log.warning("upload_sweep_failed", detail=exc.detail)
        await asyncio.sleep(every_seconds)
