"""Riding out an outage of our own servers (S3, Mongo) while a job's files move, with exponential backoff.

Only ``Unavailable`` is retried: ``Invalid`` and ``NotFound`` are permanent, and an app's own
exit code is its job's outcome, not an outage. Every step retried here must be idempotent (a
re-staged file or a re-uploaded output overwrites what an earlier attempt left).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

import structlog

from shared.errors import Unavailable
from shared.settings import RunnerSettings

log = structlog.get_logger()
T = TypeVar("T")
CAP_SECONDS = 30.0


@dataclass(frozen=True)
class Backoff:
    """How often to retry (``retries`` after the first try) and the first pause, doubling up to ``cap``."""

    retries: int
    first: float
    cap: float = CAP_SECONDS

    @classmethod
    def of(cls, settings: RunnerSettings) -> Backoff:
        """The runner's configured backoff (``INFRA_RETRIES``, ``INFRA_BACKOFF_SECONDS``)."""
        return cls(retries=settings.infra_retries, first=settings.infra_backoff_seconds)

    def pauses(self) -> list[float]:
        """The pause before each retry."""
        return [min(self.first * 2**attempt, self.cap) for attempt in range(self.retries)]


async def retry_on_outage(
    action: Callable[[], Awaitable[T]], *, backoff: Backoff, stop: asyncio.Event, event: str, job_id: str
) -> T:
    """Await ``action()``, retrying it after each ``Unavailable`` until the retries run out.

    Exhausted, it raises ``Unavailable`` saying how often and for how long it tried. Once ``stop``
    is set (a cancel, or the worker shutting down) it raises the last failure instead of waiting:
    a stopped job, or a draining worker, must not sit out a backoff.
    """
    started = time.monotonic()
    for attempt, pause in enumerate(backoff.pauses(), start=1):
        try:
            return await action()
        except Unavailable as exc:
            if stop.is_set():
                raise
            log.warning(event, job_id=job_id, detail=exc.detail, attempt=attempt, retry_in=pause)
            try:
                await asyncio.wait_for(stop.wait(), pause)
            except TimeoutError:
                continue
            raise exc
    try:
        return await action()
    except Unavailable as exc:
        if stop.is_set() or not backoff.retries:
            raise
        elapsed = time.monotonic() - started
        times = "once" if backoff.retries == 1 else f"{backoff.retries} times"
        raise Unavailable(f"{exc.detail}; retried {times} over {elapsed:.0f} s") from exc
