"""The paused queues as a runner sees them: all of them in one read, made again at most once a second.

A job dispatched before its queue was paused goes back to the dispatcher rather than start
(``runs.take_job``). Rather than read the job's queue for every job, a runner keeps the set of
paused queues and reads it again when it takes a job over ``REFRESH_SECONDS`` after the last read
began. So a pause is seen by every job taken ``REFRESH_SECONDS`` or more after it; a job taken
sooner may still start, as one taken just before the pause would have.
"""

from __future__ import annotations

import asyncio
import time

from shared.store.queues import QueueStore

REFRESH_SECONDS = 1.0


class PausedQueues:
    """The (owner, name) of every paused queue, read at most once per ``refresh_seconds`` whatever the job rate."""

    def __init__(self, *, refresh_seconds: float = REFRESH_SECONDS) -> None:
        self._refresh_seconds = refresh_seconds
        self._paused: frozenset[tuple[str, str]] = frozenset()
        self._read_at: float | None = None
        self._reading = asyncio.Lock()  # jobs taken at once share one read

    async def paused(self, owner: str, name: str, *, queues: QueueStore) -> bool:
        """Whether the owner's queue of that name is paused, as of a read begun under ``refresh_seconds`` ago."""
        async with self._reading:
            now = time.monotonic()
            if self._read_at is None or now - self._read_at >= self._refresh_seconds:
                self._paused = frozenset(await queues.paused_queues())
                self._read_at = now  # when the read began: a pause committed before then is in it
        return (owner, name) in self._paused
