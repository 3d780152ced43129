"""Following events: one job's until it has finished, or all of a caller's until they go quiet.

Both follow Mongo by polling for events after the last one yielded, so a caller that passes the
last id it saw resumes where it left off. Both end on their own: a job's once its terminal state
is yielded, the caller's after ``wait`` seconds without events; neither runs forever. While
nothing happens they yield ``KEEP_ALIVE`` every ``HEARTBEAT_SECONDS``, so a connection carrying
them can be kept open through proxies. Both await ``check`` before each poll: it raises once the
caller's credential has lapsed (it reads again only every few seconds), and the stream ends.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import structlog
from ulid import ULID

from shared.errors import AppError
from shared.models import Event, JobState, utcnow
from shared.store.events import EventStore
from shared.store.jobs import JobStore

log = structlog.get_logger()

POLL_SECONDS = 0.5
HEARTBEAT_SECONDS = 10.0
# Events are written by several processes, so one may be stored a moment after a later-numbered
# one; streams send only events older than this, so none is skipped by the "after the last id" query.
SETTLED_LAG_SECONDS = 1.0
# A runner records a job's terminal event just after its state; a job finished longer ago than
# this, with nothing left to send, has no more events coming for its stream.
SETTLE_SECONDS = 3.0
BATCH = 500
_TERMINAL = {state.value for state in JobState if state.terminal}


@dataclass(frozen=True)
class KeepAlive:
    """A beat of a quiet stream: nothing happened, and the stream goes on."""


KEEP_ALIVE = KeepAlive()
Check = Callable[[], Awaitable[None]]  # raises an AppError once the stream must end (its caller's credential lapsed)


def horizon() -> str:
    """The lowest id of ``SETTLED_LAG_SECONDS`` ago: streams send events below it."""
    return str(ULID.from_int(int((time.time() - SETTLED_LAG_SECONDS) * 1000) << 80)).lower()


async def follow_job(
    job_id: str, *, owner: str | None, after: str | None, jobs: JobStore, events: EventStore, check: Check
) -> AsyncIterator[Event | KeepAlive]:
    """The job's events after ``after`` as they are recorded; NotFound now if ``owner`` has no such job."""
    job = await jobs.get_job(job_id, owner=owner)
    return job_events(job.id, after=after, jobs=jobs, events=events, check=check)


async def job_events(
    job_id: str, *, after: str | None, jobs: JobStore, events: EventStore, check: Check
) -> AsyncIterator[Event | KeepAlive]:
    """A job's events after ``after``, as they are recorded, until its terminal state has been yielded."""
    beat = time.monotonic()
    try:
        while True:
            await check()
            recorded = await events.events_after(after, before=horizon(), job_id=job_id, limit=BATCH)
            for event in recorded:
                yield event
                after, beat = event.id, time.monotonic()
            if any(e.type == "state" and e.data.get("state") in _TERMINAL for e in recorded):
                return
            if len(recorded) == BATCH:
                continue
            if not recorded:
                job = await jobs.get_job(job_id)
                if job.finished is not None and (utcnow() - job.finished).total_seconds() > SETTLE_SECONDS:
                    return
            if time.monotonic() - beat >= HEARTBEAT_SECONDS:
                yield KEEP_ALIVE
                beat = time.monotonic()
            await asyncio.sleep(POLL_SECONDS)
    except AppError as exc:
        log.warning("event_stream_ended", job_id=job_id, detail=exc.detail)


async def caller_events(
    owner: str | None, *, after: str | None, wait: int, events: EventStore, check: Check
) -> AsyncIterator[Event | KeepAlive]:
    """``owner``'s events (None: everyone's) after ``after``, until none came for ``wait`` seconds."""
    quiet_since = beat = time.monotonic()
    try:
        while True:
            await check()
            recorded = await events.events_after(after, before=horizon(), owner=owner, limit=BATCH)
            for event in recorded:
                yield event
                after = event.id
                quiet_since = beat = time.monotonic()
            if len(recorded) == BATCH:
                continue
            if time.monotonic() - quiet_since >= wait:
                return
            if time.monotonic() - beat >= HEARTBEAT_SECONDS:
                yield KEEP_ALIVE
                beat = time.monotonic()
            await asyncio.sleep(min(POLL_SECONDS, max(0.0, wait - (time.monotonic() - quiet_since))))
    except AppError as exc:
        log.warning("event_stream_ended", detail=exc.detail)
