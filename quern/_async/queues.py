"""The caller's queues: ``client.queues``."""

from __future__ import annotations

import builtins
from collections.abc import AsyncIterator
from typing import Any

from quern._async.connection import AsyncConnection
from quern.models import Queue
from quern.transport import query


class Queues:
    """The caller's queues: ``client.queues``; a queue is named by its id or its name."""

    def __init__(self, connection: AsyncConnection) -> None:
        self._connection = connection

    async def create(self, name: str, *, description: str | None = None) -> Queue:
        return await self._connection.post(Queue, "/v1/queues", query(name=name, description=description))

    def list(self) -> AsyncIterator[Queue]:
        return self._connection.pages(Queue, "/v1/queues")

    async def get(self, queue: str) -> Queue:
        return await self._connection.get(Queue, f"/v1/queues/{queue}")

    async def pause(self, queue: str) -> Queue:
        return await self._connection.post(Queue, f"/v1/queues/{queue}/pause")

    async def resume(self, queue: str) -> Queue:
        return await self._connection.post(Queue, f"/v1/queues/{queue}/resume")

    async def retry(
        self, queue: str, *, states: builtins.list[str] | None = None, limit: int | None = None
    ) -> dict[str, Any]:
        """Put the queue's failed (or ``states``) jobs back to QUEUED: ``{retried, skipped, more}``."""
        body = query(states=states, limit=limit) or None
        answer = await self._connection.request("POST", f"/v1/queues/{queue}/retry", json=body)
        return dict(answer.json())

    async def recover(self, queue: str) -> dict[str, Any]:
        """Requeue the queue's RUNNING jobs whose worker is gone: ``{recovered}``."""
        answer = await self._connection.request("POST", f"/v1/queues/{queue}/recover")
        return dict(answer.json())

    async def delete(self, queue: str, *, force: bool = False) -> None:
        await self._connection.delete(f"/v1/queues/{queue}", force="true" if force else None)
