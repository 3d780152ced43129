"""Batches: jobs submitted in one call, stored whole before the dispatcher may see any of them."""

from __future__ import annotations

import asyncio
from datetime import datetime

from pymongo import ASCENDING

from shared.errors import NotFound, Unavailable
from shared.models import Batch, Job
from shared.store.database import Database, Document, from_document, to_document, translated


class BatchStore:
    """Batches and the jobs they hold."""

    def __init__(self, database: Database) -> None:
        self._batches = database.collection("batches")
        self._jobs = database.collection("jobs")

    async def ensure_indexes(self) -> None:
        """Create the indexes the queries below rely on (idempotent)."""
        with translated("create indexes"):
            await self._jobs.create_index([("batch", ASCENDING), ("_id", ASCENDING)])
            await self._batches.create_index([("committed", ASCENDING), ("created", ASCENDING)])

    async def insert_batch(self, batch: Batch, jobs: list[Job]) -> None:
        """Record a batch (uncommitted) and its jobs; the dispatcher ignores them until it is committed.

        The jobs go in one ``insert_many`` (the driver splits it only where the server's limits say),
        their documents made off the event loop.
        """
        docs = await asyncio.to_thread(lambda: [to_document(job) for job in jobs])
        with translated(f"batch {batch.id}"):
            await self._batches.insert_one(to_document(batch))
            if docs:
                await self._jobs.insert_many(docs, ordered=True)

    async def commit_batch(self, batch_id: str) -> None:
        """Let the dispatcher see a batch that is fully stored; Unavailable if it was swept away as abandoned."""
        with translated(f"batch {batch_id}"):
            result = await self._batches.update_one(
                {"_id": batch_id, "committed": False}, {"$set": {"committed": True}}
            )
        if not result.modified_count:
            raise Unavailable(f"batch {batch_id} took too long to store and was discarded")

    async def delete_batch(self, batch_id: str) -> None:
        """Forget an uncommitted batch with its jobs (storing it failed, or was abandoned); a committed one stays.

        The record goes first, so a commit racing with this fails rather than release half a batch.
        """
        with translated(f"batch {batch_id}"):
            result = await self._batches.delete_one({"_id": batch_id, "committed": False})
            if result.deleted_count:
                await self._jobs.delete_many({"batch": batch_id})

    async def uncommitted_batches(
        self, *, created_before: datetime | None = None, among: list[str] | None = None
    ) -> list[str]:
        """Ids of batches still being stored (or, with ``created_before``, abandoned while being stored);
        with ``among``, only of these.
        """
        match: Document = {"committed": False}
        if among is not None:
            match["_id"] = {"$in": among}
        if created_before is not None:
            match["created"] = {"$lt": created_before}
        with translated("batches"):
            docs = await self._batches.find(match, {"_id": 1}).to_list(None)
        return [doc["_id"] for doc in docs]

    async def batch_jobs(self, batch_id: str, *, owner: str) -> list[Job]:
        """The jobs of a committed batch, in submission order; NotFound while it is still being stored."""
        with translated(f"batch {batch_id}"):
            batch = await self._batches.find_one({"_id": batch_id, "owner": owner, "committed": True})
            docs = (
                [] if batch is None else await self._jobs.find({"batch": batch_id}).sort("_id", ASCENDING).to_list(None)
            )
        if batch is None:
            raise NotFound(f"no batch {batch_id}")
        return [from_document(Job, doc) for doc in docs]
