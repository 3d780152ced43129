# Generated from quern/_async/queues.py by scripts/unasync.py: edit that file, then run `just fmt`.
"""The caller's queues: ``client.queues``."""

from __future__ import annotations

import builtins
from collections.abc import Iterator
from typing import Any

from quern._sync.connection import Connection
from quern.models import Queue
from quern.transport import query


class Queues:
    """The caller's queues: ``client.queues``; a queue is named by its id or its name."""

    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    def create(self, name: str, *, description: str | None = None) -> Queue:
        return self._connection.post(Queue, "/v1/queues", query(name=name, description=description))

    def list(self) -> Iterator[Queue]:
        return self._connection.pages(Queue, "/v1/queues")

    def get(self, queue: str) -> Queue:
        return self._connection.get(Queue, f"/v1/queues/{queue}")

    def pause(self, queue: str) -> Queue:
        return self._connection.post(Queue, f"/v1/queues/{queue}/pause")

    def resume(self, queue: str) -> Queue:
        return self._connection.post(Queue, f"/v1/queues/{queue}/resume")

    def retry(
        self, queue: str, *, states: builtins.list[str] | None = None, limit: int | None = None
    ) -> dict[str, Any]:
        """Put the queue's failed (or ``states``) jobs back to QUEUED: ``{retried, skipped, more}``."""
        body = query(states=states, limit=limit) or None
        answer = self._connection.request("POST", f"/v1/queues/{queue}/retry", json=body)
        return dict(answer.json())

    def recover(self, queue: str) -> dict[str, Any]:
        """Requeue the queue's RUNNING jobs whose worker is gone: ``{recovered}``."""
        answer = self._connection.request("POST", f"/v1/queues/{queue}/recover")
        return dict(answer.json())

    def delete(self, queue: str, *, force: bool = False) -> None:
        self._connection.delete(f"/v1/queues/{queue}", force="true" if force else None)
