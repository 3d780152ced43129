"""Workers: each runner and results worker's presence, refreshed by its heartbeat."""

from __future__ import annotations

from pymongo import ASCENDING

from shared.models import WorkerInfo
from shared.store.database import Database, from_document, to_document, translated


class WorkerStore:
    """The registered workers."""

    def __init__(self, database: Database) -> None:
        self._workers = database.collection("workers")

    async def heartbeat(self, worker: WorkerInfo) -> None:
        """Record (or refresh) a worker's presence."""
        doc = to_document(worker)
        with translated(f"worker {worker.id}"):
            await self._workers.replace_one({"_id": doc["_id"]}, doc, upsert=True)

    async def remove_worker(self, worker_id: str) -> None:
        """Forget a worker that stopped cleanly."""
        with translated(f"worker {worker_id}"):
            await self._workers.delete_one({"_id": worker_id})

    async def list_workers(self) -> list[WorkerInfo]:
        """Every registered worker, by service and id."""
        with translated("list workers"):
            docs = await self._workers.find({}).sort([("service", ASCENDING), ("_id", ASCENDING)]).to_list(None)
        return [from_document(WorkerInfo, doc) for doc in docs]
