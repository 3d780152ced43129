"""The runner and results workers, as each last reported itself by heartbeat."""

from __future__ import annotations

from datetime import datetime

from shared.models.records import Record, utcnow

MISSED_BEATS = 3  # a worker that missed this many heartbeats is taken for gone


class WorkerInfo(Record):
    """A runner or results worker, as it last reported itself."""

    id: str
    service: str
    host: str
    pid: int
    concurrency: int
    busy: int
    queues: list[str]
    started: datetime
    heartbeat: datetime

    def alive(self, heartbeat_seconds: float, *, now: datetime | None = None) -> bool:
        """Whether it reported within the last three heartbeat intervals before ``now`` (the database's clock)."""
        return ((now or utcnow()) - self.heartbeat).total_seconds() < MISSED_BEATS * heartbeat_seconds
