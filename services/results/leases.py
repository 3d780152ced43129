"""The packaging lease: one packager at a time builds a job's archive, and one that dies leaves it to the next.

The lease is a time on the job (``packaging_lease``), taken with a compare-and-set only while it
is unset or lapsed, moved on every ``RENEW_SECONDS`` while the archive builds and cleared when
the archive is attached (or the build failed). A packager killed mid-build leaves a lease that
lapses within ``LEASE_SECONDS``; its redelivered message, waiting that long, then takes it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from datetime import datetime, timedelta
from typing import TypeVar

import structlog

from shared.errors import AppError
from shared.models import Job, utcnow
from shared.store.archives import ArchiveStore

log = structlog.get_logger()
T = TypeVar("T")
LEASE_SECONDS = 120.0
RENEW_SECONDS = 30.0  # four renewals per lease: a Mongo hiccup or two does not lose it


class PackagingLease:
    """This packager's hold on one job's packaging, until ``until``."""

    def __init__(self, archives: ArchiveStore, job: Job, until: datetime) -> None:
        self.job = job  # as it was when the lease was taken: the run to package
        self.until = until
        self._archives = archives
        self._held = True

    @classmethod
    async def take(cls, archives: ArchiveStore, job: Job) -> PackagingLease | None:
        """The lease on the packaging of ``job``'s run, or None if another packager holds it or the job moved on."""
        until = _lease_end()
        claimed = await archives.claim_packaging(job.id, finished=job.finished, until=until)
        return None if claimed is None else cls(archives, claimed, until)

    async def hold_while(self, work: Awaitable[T], *, every: float = RENEW_SECONDS) -> T:
        """Await ``work``, renewing the lease ``every`` seconds meanwhile; a failure of ``work`` releases it."""
        running = asyncio.ensure_future(work)
        try:
            while not running.done():
                await asyncio.wait({running}, timeout=every)
                if not running.done():
                    await self._renew()
            return running.result()
        except BaseException:
            running.cancel()
            await self.release()
            raise

    async def release(self) -> None:
        """Give the lease up if still held (a database hiccup leaves it to lapse instead)."""
        if not self._held:
            return
        try:
            await self._archives.release_packaging(self.job.id, lease=self.until)
        except AppError as exc:
            log.warning("packaging_lease_not_released", job_id=self.job.id, detail=exc.detail)

    async def _renew(self) -> None:
        if not self._held:
            return
        until = _lease_end()
        try:
            renewed = await self._archives.extend_packaging(self.job.id, lease=self.until, until=until)
        except AppError as exc:
            log.warning("packaging_lease_not_renewed", job_id=self.job.id, detail=exc.detail)
            return  # the next renewal may get through before the lease lapses
        if renewed:
            self.until = until
        else:
            # Lapsed and taken by another packager (this one stalled): its archive is attached, not this one's.
            self._held = False
            log.warning("packaging_lease_lost", job_id=self.job.id)


def _lease_end() -> datetime:
    return utcnow() + timedelta(seconds=LEASE_SECONDS)


def wait_for_lease(job: Job) -> float | None:
    """Seconds until another packager's lease on ``job`` lapses, or None if none is held."""
    if job.packaging_lease is None:
        return None
    left = (job.packaging_lease - utcnow()).total_seconds()
    return left if left > 0 else None
