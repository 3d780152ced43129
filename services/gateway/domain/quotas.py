"""Per-user quotas: the deployment's defaults (``QUOTA_*``) under each user's own, set by an admin.

Each is checked where it is spent, before anything changes, by a count that stops at the quota:

- queued jobs: the owner's QUEUED jobs, counted along the index (owner, state, _id) up to the
  quota, before a job or batch is stored (429 ``quota-queued-jobs``);
- stored bytes: the owner's counter of file and dataset bytes (``shared/store/usage.py``) plus
  what is about to be stored (413 ``quota-stored-bytes``);
- pending uploads: the owner's uploads announced and not completed, up to the quota (429
  ``quota-pending-uploads``);
- event streams: those open on this gateway process (``StreamCounts``; 429 ``quota-event-streams``);
- batch size: the jobs of one batch (413 ``quota-batch-size``).

Checks and writes are not one transaction: requests of the same user at the same instant may
pass together and overshoot a quota by their own size; the next one is refused. That is the price
of a count instead of a lock, and enough to stop one user from taking everything.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass, field
from typing import TypeVar

from shared.errors import BatchSizeQuota, EventStreamsQuota, PendingUploadsQuota, QueuedJobsQuota, StoredBytesQuota
from shared.models import QUOTAS, User
from shared.settings import GatewaySettings
from shared.store.files import FileStore
from shared.store.jobs import JobStore
from shared.store.usage import UsageStore

T = TypeVar("T")


@dataclass(frozen=True)
class Quotas:
    """One user's quotas in force; 0: none."""

    queued_jobs: int
    stored_bytes: int
    pending_uploads: int
    event_streams: int
    batch_jobs: int
    # This gateway's recent counts of queued jobs (``QueuedCounts``); None: count at every check.
    recent: QueuedCounts | None = field(default=None, compare=False, repr=False)

    @classmethod
    def of(cls, user: User, settings: GatewaySettings, recent: QueuedCounts | None = None) -> Quotas:
        """The user's own quotas where an admin set them, the deployment's elsewhere."""
        own = user.quotas.model_dump()
        mine = {name: getattr(settings, f"quota_{name}") if own[name] is None else own[name] for name in QUOTAS}
        return cls(**mine, recent=recent)


class QueuedCounts:
    """This gateway's last count of each owner's QUEUED jobs, plus what it has queued for them since.

    While that estimate, with the jobs about to be added, is at most half the owner's quota and
    the count is at most ``FRESH_SECONDS`` old, the check does not count again: a script that
    submits jobs one at a time costs one count every two seconds, not one per job. Nearer the
    quota every check counts. The estimate misses what other gateways queued in those seconds,
    so behind N gateways a user under half their quota may pass it by what the others accept
    meanwhile, as concurrent requests may anyway (see the module's docstring).
    """

    FRESH_SECONDS = 2.0
    KEPT = 10_000  # owners remembered; the least recently counted are forgotten first

    def __init__(self) -> None:
        self._seen: OrderedDict[str, tuple[float, int]] = OrderedDict()

    def allows(self, owner: str, adding: int, limit: int) -> bool:
        """Whether ``adding`` more fit under half of ``limit`` by a fresh estimate (then they are added to it)."""
        seen = self._seen.get(owner)
        if seen is None or time.monotonic() - seen[0] > self.FRESH_SECONDS or seen[1] + adding > limit // 2:
            return False
        self._seen[owner] = (seen[0], seen[1] + adding)
        return True

    def counted(self, owner: str, queued: int) -> None:
        """Note a count just made (with what is about to be added)."""
        self._seen[owner] = (time.monotonic(), queued)
        self._seen.move_to_end(owner)
        while len(self._seen) > self.KEPT:
            self._seen.popitem(last=False)


@dataclass(frozen=True)
class Usage:
    """What a user holds of what the quotas measure (batch size is per request: nothing held)."""

    queued_jobs: int
    stored_bytes: int
    pending_uploads: int
    event_streams: int  # on this gateway


class StreamCounts:
    """The event streams open on this gateway process, per user: counted here, not in Mongo, so per gateway."""

    def __init__(self) -> None:
        self._open: dict[str, int] = {}

    def open(self, owner: str) -> int:
        """How many streams ``owner`` has open here."""
        return self._open.get(owner, 0)

    def check(self, owner: str, quotas: Quotas) -> None:
        """EventStreamsQuota if ``owner`` has as many streams open here as their quota allows."""
        if quotas.event_streams and self.open(owner) >= quotas.event_streams:
            raise EventStreamsQuota(
                f"you have {self.open(owner)} event streams open on this gateway; your quota is {quotas.event_streams}"
            )

    async def counted(self, owner: str, followed: AsyncIterator[T]) -> AsyncGenerator[T]:
        """``followed``, counted as one of ``owner``'s streams from its first item until it ends or is closed.

        Counting starts with the stream rather than at ``check``, so a response never sent leaves no count behind.
        """
        self._open[owner] = self.open(owner) + 1
        try:
            async for item in followed:
                yield item
        finally:
            left = self.open(owner) - 1
            if left > 0:
                self._open[owner] = left
            else:
                self._open.pop(owner, None)


async def check_queued_jobs(adding: int, *, owner: str, quotas: Quotas, jobs: JobStore) -> None:
    """QueuedJobsQuota unless ``owner`` may have ``adding`` more jobs QUEUED."""
    limit, recent = quotas.queued_jobs, quotas.recent
    if not limit or (recent is not None and recent.allows(owner, adding, limit)):
        return
    queued = 0 if adding > limit else await jobs.count_queued(owner, limit=limit)
    if queued + adding > limit:
        raise QueuedJobsQuota(
            f"you have {queued} queued jobs and your quota is {limit}: {adding} more cannot be queued now"
        )
    if recent is not None:
        recent.counted(owner, queued + adding)


def check_batch_size(size: int, *, quotas: Quotas) -> None:
    """BatchSizeQuota if a batch of ``size`` jobs is larger than the quota."""
    if quotas.batch_jobs and size > quotas.batch_jobs:
        raise BatchSizeQuota(f"a batch of yours may have at most {quotas.batch_jobs} jobs, not {size}; split it")


async def stored_room(*, owner: str, quotas: Quotas, usage: UsageStore) -> int | None:
    """How many bytes more ``owner`` may store now; None: no quota."""
    if not quotas.stored_bytes:
        return None
    return max(0, quotas.stored_bytes - await usage.stored_bytes(owner))


def check_room(adding: int, room: int | None) -> None:
    """StoredBytesQuota if ``adding`` bytes do not fit in ``room`` (None: no quota)."""
    if room is not None and adding > room:
        raise StoredBytesQuota(
            f"{adding} bytes more would take your stored files and datasets past your quota ({room} bytes left); "
            "delete some first"
        )


async def check_stored_bytes(adding: int, *, owner: str, quotas: Quotas, usage: UsageStore) -> None:
    """StoredBytesQuota unless ``owner`` may store ``adding`` bytes more."""
    check_room(adding, await stored_room(owner=owner, quotas=quotas, usage=usage))


async def check_pending_uploads(*, owner: str, quotas: Quotas, files: FileStore) -> None:
    """PendingUploadsQuota if ``owner`` has as many uploads pending as the quota allows."""
    limit = quotas.pending_uploads
    if limit and (pending := await files.count_uploads(owner, limit=limit)) >= limit:
        raise PendingUploadsQuota(f"you have {pending} uploads pending and your quota is {limit}")


async def usage_of(owner: str, *, jobs: JobStore, files: FileStore, usage: UsageStore, streams: StreamCounts) -> Usage:
    """What ``owner`` holds now, counted in full."""
    return Usage(
        queued_jobs=await jobs.count_queued(owner),
        stored_bytes=await usage.stored_bytes(owner),
        pending_uploads=await files.count_uploads(owner),
        event_streams=streams.open(owner),
    )
