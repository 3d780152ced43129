"""Where jobs are grouped: a user's named queues, and the batches jobs are submitted in."""

from __future__ import annotations

from datetime import datetime

from shared.models.records import Record

DEFAULT_QUEUE = "default"


class Queue(Record):
    """A user's named queue of jobs, addressed by id or name: paused queues start nothing new."""

    id: str
    owner: str
    name: str
    description: str = ""
    paused: bool = False
    created: datetime
    updated: datetime


class Batch(Record):
    """Jobs submitted in one call; its jobs are not dispatched until it is ``committed`` (all of it stored)."""

    id: str
    owner: str
    size: int
    created: datetime
    committed: bool = False
