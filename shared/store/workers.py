"""Workers: each runner and results worker's presence, refreshed by its heartbeat."""

from __future__ import annotations

from datetime import datetime

from pymongo import ASCENDING

from shared.models import WorkerInfo
from shared.store.database import Database, from_document, to_document, translated


class WorkerStore:
    """The registered workers."""

    def __init__(self, database: Database) -> None:
        self._database = database
        self._workers = database.collection("workers")

    async def heartbeat(self, worker: WorkerInfo) -> None:
        """Record (or refresh) a worker's presence, stamped by the database's clock rather than the worker's."""
        doc = to_document(worker)
        worker_id = doc.pop("_id")
        doc.pop("heartbeat", None)
        with translated(f"worker {worker_id}"):
            await self._workers.update_one(
                {"_id": worker_id}, {"$set": doc, "$currentDate": {"heartbeat": True}}, upsert=True
            )

    async def live_workers(self, heartbeat_seconds: float, *, now: datetime | None = None) -> list[WorkerInfo]:
        """The workers whose last heartbeat is recent by the database's clock (a skewed worker clock does not count).

        ``now`` is the database's time, read here unless the caller has it already.
        """
        now = now or await self._database.server_time()
        return [worker for worker in await self.list_workers() if worker.alive(heartbeat_seconds, now=now)]

    async def remove_worker(self, worker_id: str) -> None:
        """Forget a worker that stopped cleanly."""
        with translated(f"worker {worker_id}"):
            await self._workers.delete_one({"_id": worker_id})

    async def list_workers(self) -> list[WorkerInfo]:
        """Every registered worker, by service and id."""
        with translated("list workers"):
            docs = await self._workers.find({}).sort([("service", ASCENDING), ("_id", ASCENDING)]).to_list(None)
        return [from_document(WorkerInfo, doc) for doc in docs]
