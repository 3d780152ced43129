"""Queues: each user's named queues of jobs, which can be paused, counted, retried and deleted."""

from __future__ import annotations

from collections import OrderedDict

from pymongo import ASCENDING, DESCENDING, ReturnDocument

from shared.errors import Duplicate, NotFound
from shared.models import JobState, Queue, utcnow
from shared.store.database import (
    Database,
    Document,
    Page,
    change_one,
    from_document,
    owner_filter,
    read_one,
    read_page,
    to_document,
    translated,
)

KNOWN_QUEUES = 10_000  # (owner, name) pairs each process remembers as existing, the least recently used forgotten


class QueueStore:
    """Queues, each name unique per owner, and the jobs in them."""

    def __init__(self, database: Database) -> None:
        self._queues = database.collection("queues")
        self._jobs = database.collection("jobs")
        self._known: OrderedDict[tuple[str, str], str] = OrderedDict()  # (owner, name) -> id, ensured by this process

    async def ensure_indexes(self) -> None:
        """Create the indexes the queries below rely on (idempotent)."""
        with translated("create indexes"):
            await self._queues.create_index([("owner", ASCENDING), ("name", ASCENDING)], unique=True)
            await self._queues.create_index([("owner", ASCENDING), ("_id", DESCENDING)])
            await self._queues.create_index([("paused", ASCENDING)])  # paused_queues: each runner's, once a second
            await self._jobs.create_index([("owner", ASCENDING), ("queue", ASCENDING), ("state", ASCENDING)])

    async def ensure_queue(self, queue: Queue) -> Queue:
        """The owner's queue of that name, created as ``queue`` if it does not exist yet."""
        doc, match = to_document(queue), {"owner": queue.owner, "name": queue.name}
        try:
            with translated(f"queue {queue.name}"):
                found = await self._queues.find_one_and_update(
                    match, {"$setOnInsert": doc}, upsert=True, return_document=ReturnDocument.AFTER
                )
        except Duplicate:  # a concurrent upsert created it first
            with translated(f"queue {queue.name}"):
                found = await self._queues.find_one(match)
        if found is None:
            raise NotFound(f"no queue {queue.name!r}")
        return from_document(Queue, found)

    async def ensure_queue_exists(self, queue: Queue) -> None:
        """As ``ensure_queue``, without a round trip for a queue this process ensured already.

        Only for queues that cannot be deleted (each user's default queue): one deleted by another
        process would stay remembered here. ``delete_queue`` forgets what it deletes in this process.
        """
        key = (queue.owner, queue.name)
        if key in self._known:
            self._known.move_to_end(key)
            return
        self._known[key] = (await self.ensure_queue(queue)).id
        if len(self._known) > KNOWN_QUEUES:
            self._known.popitem(last=False)

    async def insert_queue(self, queue: Queue) -> None:
        """Record a new queue; Conflict if the owner has one of that name."""
        with translated(f"queue {queue.name!r}"):
            await self._queues.insert_one(to_document(queue))

    async def get_queue(self, queue_id: str, *, owner: str | None = None) -> Queue:
        """One queue (of ``owner``, unless None), or NotFound."""
        match = {"_id": queue_id, **owner_filter(owner)}
        return await read_one(self._queues, Queue, match, what=f"queue {queue_id}", missing=f"no queue {queue_id}")

    async def find_queue(self, *, owner: str, name: str) -> Queue | None:
        """The owner's queue called ``name``, if any."""
        with translated(f"queue {name!r}"):
            doc = await self._queues.find_one({"owner": owner, "name": name})
        return None if doc is None else from_document(Queue, doc)

    async def list_queues(self, *, owner: str | None, limit: int, after: str | None) -> Page[Queue]:
        """Queues, newest first."""
        return await read_page(self._queues, Queue, owner_filter(owner), limit=limit, after=after)

    async def set_queue_paused(self, queue_id: str, *, owner: str | None, paused: bool) -> Queue:
        """Pause or resume a queue; NotFound if it is not the owner's."""
        match = {"_id": queue_id, **owner_filter(owner)}
        update = {"$set": {"paused": paused, "updated": utcnow()}}
        return await change_one(
            self._queues, Queue, match, update, what=f"queue {queue_id}", missing=f"no queue {queue_id}"
        )

    async def paused_queues(self) -> list[tuple[str, str]]:
        """(owner, name) of every paused queue (few: pausing is rare), read by index."""
        with translated("paused queues"):
            docs = await self._queues.find({"paused": True}, {"owner": 1, "name": 1}).to_list(None)
        return [(doc["owner"], doc["name"]) for doc in docs]

    async def delete_queue(self, queue_id: str) -> None:
        """Forget a queue (its jobs are the caller's business)."""
        with translated(f"queue {queue_id}"):
            await self._queues.delete_one({"_id": queue_id})
        for key in [key for key, known in self._known.items() if known == queue_id]:
            del self._known[key]

    async def queue_counts(self, queues: list[Queue]) -> dict[str, dict[str, int]]:
        """Jobs per state in each of ``queues``: {queue id: {state: count}}."""
        if not queues:
            return {}
        by_key = {(q.owner, q.name): q.id for q in queues}
        # Owners and names separately, not an $or of pairs (see shared.store.database); other pairs are dropped below.
        owners, names = sorted({q.owner for q in queues}), sorted({q.name for q in queues})
        match = {"owner": {"$in": owners}, "queue": {"$in": names}}
        group = {"_id": {"owner": "$owner", "queue": "$queue", "state": "$state"}, "n": {"$sum": 1}}
        counts: dict[str, dict[str, int]] = {q.id: {} for q in queues}
        with translated("count queue jobs"):
            async for row in await self._jobs.aggregate([{"$match": match}, {"$group": group}]):
                queue_id = by_key.get((row["_id"]["owner"], row["_id"]["queue"]))
                if queue_id is not None:
                    counts[queue_id][row["_id"]["state"]] = row["n"]
        return counts

    async def queue_job_ids(self, queue: Queue, *, states: list[JobState] | None = None) -> list[str]:
        """Ids of the jobs in ``queue`` (in any of ``states``), oldest first."""
        match: Document = {"owner": queue.owner, "queue": queue.name}
        if states is not None:
            match["state"] = {"$in": [state.value for state in states]}
        with translated(f"jobs of queue {queue.id}"):
            docs = await self._jobs.find(match, {"_id": 1}).sort("_id", ASCENDING).to_list(None)
        return [doc["_id"] for doc in docs]

    async def delete_unstarted_jobs(self, *, owner: str, queue: str) -> int:
        """Forget the queue's jobs that never started (QUEUED, or ended before starting): they left nothing in S3."""
        with translated(f"jobs of queue {queue!r}"):
            result = await self._jobs.delete_many({"owner": owner, "queue": queue, "started": None})
        return int(result.deleted_count)
