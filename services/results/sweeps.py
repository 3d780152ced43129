"""The results service's periodic sweep: expire jobs whose retention ran out, and package jobs whose packaging was lost.

Every ``RETENTION_SWEEP_SECONDS`` each results worker:

1. stamps ``expires`` (its end plus its retention) on ended jobs that keep their results for a time;
2. deletes every object under ``jobs/<id>/`` of each job past ``expires``, then marks it ``expired``
   (the record stays, and the gateway answers 410 for its archive, logs and outputs);
3. asks again for the packaging of jobs that ran, ended over ``UNPACKAGED_SECONDS`` ago and still
   have no archive (their ``package_results`` message was lost) and that no packager holds, at
   most once per ``RESEND_SECONDS`` per job, and only while the results queue is empty.

Several workers may sweep at once: a job is claimed with a compare-and-set lease before its
objects are deleted, and a packaging resend is claimed the same way, so each happens once.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import timedelta

import structlog

from shared.broker import Broker
from shared.errors import AppError, Unavailable
from shared.models import job_prefix, utcnow
from shared.storage import ObjectStorage
from shared.store.archives import ArchiveStore
from shared.tasks import PACKAGE_RESULTS

log = structlog.get_logger()
BATCH = 100  # jobs handled per step of one pass; the rest wait for the next pass
LEASE_SECONDS = 600  # a sweeper that dies while deleting leaves the job to another after this
PACKAGING_GRACE_SECONDS = 60  # a job that ran is packaged within this long of ending, or its message was lost
UNPACKAGED_SECONDS = 600
RESEND_SECONDS = 3600


@dataclass
class Sweeper:
    """Expires jobs and re-asks lost packagings, every ``interval`` seconds."""

    archives: ArchiveStore
    storage: ObjectStorage
    broker: Broker
    interval: float

    async def run_forever(self) -> None:
        """Sweep until cancelled; a backend outage is logged and retried at the next pass."""
        while True:
            try:
                await self.sweep_once()
            except AppError as exc:
                log.warning("sweep_failed", detail=exc.detail)
            except Exception:  # a bug must not end sweeping for this worker: log it and go on
                log.exception("sweep_crashed")
            await asyncio.sleep(self.interval)

    async def sweep_once(self) -> tuple[int, int]:
        """One pass: how many jobs were expired, and how many packagings were asked again."""
        await self.archives.stamp_expiry(limit=BATCH)
        return await self.expire_due(), await self.resend_unpackaged()

    async def expire_due(self) -> int:
        """Delete the objects of jobs past their expiry and mark them expired; returns how many this sweeper did."""
        now = utcnow()
        due = await self.archives.due_for_expiry(
            now=now, packaged_by=now - timedelta(seconds=PACKAGING_GRACE_SECONDS), limit=BATCH
        )
        expired = 0
        for job_id in due:
            lease = utcnow() + timedelta(seconds=LEASE_SECONDS)
            if await self.archives.claim_expiry(job_id, until=lease) is None:
                continue  # another sweeper has it, or it was deleted or re-run meanwhile
            removed = await asyncio.to_thread(self.storage.delete_prefix, job_prefix(job_id))
            if await self.archives.mark_expired(job_id, lease=lease) is not None:
                # A packager that started before the lease may have written meanwhile; none can attach now.
                removed += await asyncio.to_thread(self.storage.delete_prefix, job_prefix(job_id))
                expired += 1
                log.info("job_expired", job_id=job_id, objects=removed)
        return expired

    async def resend_unpackaged(self) -> int:
        """Ask again for the packaging of jobs that ended long ago without an archive; returns how many."""
        now = utcnow()
        resent_before = now - timedelta(seconds=RESEND_SECONDS)
        lost = await self.archives.unpackaged_jobs(
            finished_before=now - timedelta(seconds=UNPACKAGED_SECONDS), resent_before=resent_before, limit=BATCH
        )
        if not lost:
            return 0
        # A message still waiting in the queue is not lost: ask again only once the queue is empty.
        depth = await asyncio.to_thread(self.broker.queue_stats, [PACKAGE_RESULTS])
        if any(stats["messages"] for stats in depth.values()):
            return 0
        resent = 0
        for job_id in lost:
            if not await self.archives.claim_packaging_resend(job_id, resent_before=resent_before):
                continue
            try:
                await asyncio.to_thread(self.broker.send, PACKAGE_RESULTS, job_id)
            except Unavailable:
                await self.archives.release_packaging_resend(job_id)  # ask again at the next pass, not in an hour
                raise
            resent += 1
            log.warning("packaging_resent", job_id=job_id)
        return resent
