"""A run's RUNNING event, held back a moment so that a run ending at once writes it with its end.

Most trivial runs are over within a fraction of a second of their claim: their RUNNING event goes
in the end's own insert (with the end's ``state`` and ``archive`` events), one insert for the run.
A run still going ``RUNNER_START_EVENT_SECONDS`` (0.25 s) after its claim has its RUNNING event
written then, alone (or at once, by ``close``, if it was over sooner with no insert of its own:
given up, or its end refused).

The event is made at the claim, its ``at`` the job's ``started``, so its id sorts before any
other event of the run (the runner's log and progress, a cancel request or a forced state the
gateway records for a job it read as RUNNING) whenever it is stored. Streams send an event once it
is a second old (``services/gateway/domain/events.py``): it is stored well within that second, by
at most half of it (the setting's bound) plus one insert, so no stream passes its id before it is there.
"""

from __future__ import annotations

import asyncio

from shared.models import Event, Job, state_event
from shared.store.events import EventStore


class StartEvent:
    """The RUNNING event of one claimed run: written by the first insert of its run, or alone once due."""

    def __init__(self, job: Job, *, events: EventStore, within: float) -> None:
        event = state_event(job)
        self._pending = [event.model_copy(update={"at": job.started or event.at})]
        self._events = events
        self._writing: asyncio.Task[None] | None = None
        self._due = asyncio.get_running_loop().call_later(within, self._write)

    def take(self) -> list[Event]:
        """The event if it is not written yet, to go first in the caller's insert; never again after that."""
        self._due.cancel()
        pending, self._pending = self._pending, []
        return pending

    def _write(self) -> None:
        self._writing = asyncio.create_task(self._events.record_events(self.take()))

    async def close(self) -> None:
        """Write the event if no insert took it, and wait for its write (at best effort, as every event's)."""
        if pending := self.take():
            await self._events.record_events(pending)
        if self._writing is not None:
            await self._writing
