"""Events: what happened to a job, in order, for its followers (SSE, webhooks)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from ulid import ULID

from shared.models.jobs import Job
from shared.models.records import Record, utcnow

_last_event_id = ""


def new_event_id() -> str:
    """A fresh id greater than every other this process made, so one job's events keep their order."""
    global _last_event_id
    candidate = str(ULID()).lower()
    if candidate <= _last_event_id:
        candidate = str(ULID.from_int(int(ULID.from_str(_last_event_id.upper())) + 1)).lower()
    _last_event_id = candidate
    return candidate


EventType = Literal["state", "progress", "log", "archive"]


class Event(Record):
    """Something that happened to a job; ids order a job's events."""

    id: str
    job_id: str
    owner: str
    type: EventType
    at: datetime
    data: dict[str, Any]


def job_event(job: Job, type: EventType, data: dict[str, Any]) -> Event:
    """A new event of ``job``'s, happening now."""
    return Event(id=new_event_id(), job_id=job.id, owner=job.owner, type=type, at=utcnow(), data=data)


def state_event(job: Job) -> Event:
    """The event saying ``job`` entered its current state (with its exit code and why, once finished)."""
    data: dict[str, Any] = {"state": job.state.value}
    if job.state.terminal:
        data |= {"exit_code": job.exit_code, "reason": None if job.error is None else job.error.reason}
    return job_event(job, "state", data)
