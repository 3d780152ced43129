"""Job events: what happened to jobs, in order, kept for a retention period and read after an id."""

from __future__ import annotations

import asyncio

import structlog
from pymongo import ASCENDING

from shared.errors import AppError
from shared.models import Event
from shared.store.database import Database, Document, from_document, owner_filter, to_document, translated

log = structlog.get_logger()
DEFAULT_RETENTION_SECONDS = 7 * 24 * 3600
MANY_EVENTS = 100  # from this many on, their documents are made off the event loop (a batch's QUEUED events)


class EventStore:
    """Events of jobs, by job and by owner."""

    def __init__(self, database: Database) -> None:
        self._events = database.collection("events")

    async def ensure_indexes(self, *, retention_seconds: int = DEFAULT_RETENTION_SECONDS) -> None:
        """Create the indexes the queries below rely on (idempotent); events expire after the retention."""
        with translated("create indexes"):
            await self._events.create_index([("job_id", ASCENDING), ("_id", ASCENDING)])
            await self._events.create_index([("owner", ASCENDING), ("_id", ASCENDING)])
            await self._events.create_index("at", expireAfterSeconds=retention_seconds)

    async def insert_events(self, events: list[Event]) -> None:
        """Record what happened to jobs, in order, in one ``insert_many``."""
        if not events:
            return
        if len(events) < MANY_EVENTS:
            docs = [to_document(event) for event in events]
        else:
            docs = await asyncio.to_thread(lambda: [to_document(event) for event in events])
        with translated("insert events"):
            await self._events.insert_many(docs, ordered=True)

    async def record_events(self, events: list[Event]) -> None:
        """Record events of changes already made, at best effort: ones lost to an outage are logged, never raised."""
        try:
            await self.insert_events(events)
        except AppError as exc:
            for event in events:
                log.warning("job_event_lost", job_id=event.job_id, type=event.type, detail=exc.detail)

    async def events_after(
        self,
        after: str | None,
        *,
        before: str | None = None,
        job_id: str | None = None,
        owner: str | None = None,
        limit: int = 500,
    ) -> list[Event]:
        """Up to ``limit`` events between the ids ``after`` and ``before``, oldest first: one job's, or ``owner``'s."""
        match: Document = owner_filter(owner) | ({} if job_id is None else {"job_id": job_id})
        bounds = ({} if after is None else {"$gt": after}) | ({} if before is None else {"$lt": before})
        if bounds:
            match["_id"] = bounds
        with translated("list events"):
            docs = await self._events.find(match).sort("_id", ASCENDING).limit(limit).to_list(None)
        return [from_document(Event, doc) for doc in docs]
