"""Progress announcements: a running job's progress reports handed to the results service for its webhooks.

Only jobs with a receiver that asked for progress (the job's own webhook, or else one its owner
registered) are announced, and at most once every ``WEBHOOK_PROGRESS_SECONDS``: a report
within that time of the last one sent is skipped, since the next one carries newer news.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Callable

import structlog

from shared.broker import Broker
from shared.errors import AppError
from shared.models import Job
from shared.mongo import MongoStore
from shared.tasks import ANNOUNCE_PROGRESS

log = structlog.get_logger()


class ProgressAnnouncer:
    """Sends ``announce_job_progress`` for one run, throttled; a broker outage loses only these reports."""

    def __init__(self, job: Job, send: Callable[[str], object], *, every: float, wanted: bool) -> None:
        self._job = job
        self._send = send  # blocking (pika): called in a thread with the event id
        self._every = every
        self.wanted = wanted
        self._last: float | None = None

    @classmethod
    async def for_run(cls, job: Job, *, store: MongoStore, broker: Broker, every: float) -> ProgressAnnouncer:
        """An announcer that sends only if some receiver of ``job`` asked for progress (looked up once per run)."""
        send = functools.partial(broker.send, ANNOUNCE_PROGRESS, job.id)
        if job.webhook is not None:
            return cls(job, send, every=every, wanted=job.webhook.progress)
        try:
            wanted = any(webhook.progress for webhook in await store.owner_webhooks(job.owner))
        except AppError as exc:
            log.warning("webhook_progress_lookup_failed", job_id=job.id, detail=exc.detail)
            wanted = False
        return cls(job, send, every=every, wanted=wanted)

    async def __call__(self, event_id: str) -> None:
        """Announce the progress event ``event_id`` unless one was sent less than ``every`` seconds ago."""
        now = time.monotonic()
        if not self.wanted or (self._last is not None and now - self._last < self._every):
            return
        self._last = now
        try:
            await asyncio.to_thread(self._send, event_id)
        except AppError as exc:
            log.warning("webhook_progress_lost", job_id=self._job.id, detail=exc.detail)
