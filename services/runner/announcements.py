"""Announcements: a job's progress reports and archived end, handed to the results service for its webhooks.

Only jobs with a receiver that asked for progress (the job's own webhook, or else one its owner
registered) are announced, and at most once every ``WEBHOOK_PROGRESS_SECONDS``: a report
within that time of the last one sent waits for the interval to end (replaced by any newer one).
The end of a run its runner archived (``archives.py``) is announced once it is recorded, and
only when the job may have a receiver, which the take's read and the finish tell with no read of
their own (``JobStore.get_job_to_run``, ``finish_job``): most jobs have none, and cost nothing for it.
For progress, the owner's webhooks are read once per run, at its first report: most runs report
none, and cost no read for it.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Awaitable, Callable

import structlog

from services.runner.backoff import Backoff, retry_on_outage
from shared.broker import Broker
from shared.errors import AppError, Unavailable
from shared.models import Job, webhook_receivers
from shared.store.webhooks import WebhookStore
from shared.tasks import ANNOUNCE_END, ANNOUNCE_PROGRESS

log = structlog.get_logger()
SEND_TIMEOUT_SECONDS = 10.0


class ProgressAnnouncer:
    """Sends ``announce_job_progress`` for one run, throttled; a broker outage loses only these reports."""

    def __init__(
        self, job: Job, send: Callable[[str], object], *, every: float, wanted: bool | Callable[[], Awaitable[bool]]
    ) -> None:
        self._job = job
        self._send = send  # blocking (pika): called in a thread with the event id
        self._every = every
        # Whether some receiver asked for progress, or how to find out (at the first report).
        self._wanted = wanted
        self._last: float | None = None
        self._pending: str | None = None
        self._sending: set[asyncio.Task[None]] = set()

    @classmethod
    def for_run(cls, job: Job, *, webhooks: WebhookStore, broker: Broker, every: float) -> ProgressAnnouncer:
        """An announcer that sends only if some receiver of ``job`` asked for progress.

        The job's own webhook says so at once; else its owner's webhooks are read at the first report.
        """
        send = functools.partial(broker.send, ANNOUNCE_PROGRESS, job.id)
        if job.webhook is not None:
            return cls(job, send, every=every, wanted=job.webhook.progress)

        async def registered_wants_progress() -> bool:
            registered = await webhooks.owner_webhooks(job.owner)
            return bool(webhook_receivers(job, registered, progress=True))

        return cls(job, send, every=every, wanted=registered_wants_progress)

    async def __call__(self, event_id: str | None) -> None:
        """Called every tick with the tick's latest progress event (or None): announce the newest one not yet sent.

        Within ``every`` seconds of the last announcement a report waits, replaced by any newer one,
        and goes once the interval is over, so receivers never stay on a stale figure. Sending runs
        beside the run: a slow or refusing broker never holds up the app or its log.
        """
        if event_id is None and self._pending is None:
            return  # nothing to announce (and, before the first report, nothing to look up)
        if not await self._receivers_want_progress():
            return
        if event_id is not None:
            self._pending = event_id
        now = time.monotonic()
        if self._pending is None or (self._last is not None and now - self._last < self._every):
            return
        self._last, pending, self._pending = now, self._pending, None
        task = asyncio.create_task(self._send_quietly(pending))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def _receivers_want_progress(self) -> bool:
        """Whether some receiver asked for progress, looked up once (a failed lookup announces nothing)."""
        if not isinstance(self._wanted, bool):
            try:
                self._wanted = await self._wanted()
            except AppError as exc:
                log.warning("webhook_progress_lookup_failed", job_id=self._job.id, detail=exc.detail)
                self._wanted = False
        return self._wanted

    async def close(self) -> None:
        """Wait for the announcements under way (each gives up after ``SEND_TIMEOUT_SECONDS``)."""
        if self._sending:
            await asyncio.gather(*self._sending, return_exceptions=True)

    async def _send_quietly(self, event_id: str) -> None:
        try:
            await asyncio.wait_for(asyncio.to_thread(self._send, event_id), SEND_TIMEOUT_SECONDS)
        except Exception as exc:  # a lost progress report must never touch the run
            log.warning("webhook_progress_lost", job_id=self._job.id, error=repr(exc))


async def announce_end(job: Job, *, broker: Broker, backoff: Backoff) -> bool:
    """Have the results service announce the archived end of ``job`` if it may have a receiver; True if asked.

    It may if it has its own webhook, or its owner had one at its take or registered one while it
    was active (``receivers_added``, known from the take's read and the finish: nothing is read here),
    so a job without any costs no message and nothing in the results service, which reads the
    webhooks as they are now. The send rides out a RabbitMQ outage as long as a run's uploads do;
    after that the event is lost (and logged).
    """
    if job.webhook is None and not job.receivers_added:
        return False

    async def send() -> None:
        await asyncio.to_thread(broker.send, ANNOUNCE_END, job.id)

    try:
        await retry_on_outage(
            send, backoff=backoff, stop=asyncio.Event(), event="webhook_announce_retrying", job_id=job.id
        )
    except Unavailable as exc:
        log.warning("webhook_announce_lost", job_id=job.id, state=job.state.value, detail=exc.detail)
        return False
    return True
