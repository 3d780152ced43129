"""Server-Sent Events: one job's events until it has finished, or all of the caller's until they go quiet.

Streams poll Mongo for events after the last one sent, so ``Last-Event-ID`` (or ``?after=``)
resumes where a client left off. Both streams end on their own: a job's once its terminal
state is sent, the caller's after ``wait`` seconds without events; neither holds a
connection forever. A comment line keeps an idle connection alive through proxies.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import AsyncIterator
from typing import Any

import structlog
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from ulid import ULID

from services.gateway.deps import deps
from services.gateway.plumbing.auth import principal
from services.gateway.plumbing.endpoints import EVENT_STREAM, Param, Resource
from shared.errors import AppError, BadRequest
from shared.models import Event, JobState, utcnow
from shared.store.events import EventStore
from shared.store.jobs import JobStore

log = structlog.get_logger()

resource = Resource("jobs")
POLL_SECONDS = 0.5
HEARTBEAT_SECONDS = 10.0
DEFAULT_WAIT_SECONDS = 30
MAX_WAIT_SECONDS = 300
# Events are written by several processes, so one may be stored a moment after a later-numbered
# one; streams send only events older than this, so none is skipped by the "after the last id" query.
SETTLED_LAG_SECONDS = 1.0
# A runner records a job's terminal event just after its state; a job finished longer ago than
# this, with nothing left to send, has no more events coming for its stream.
SETTLE_SECONDS = 3.0
BATCH = 500
KEEP_ALIVE = ": keep-alive\n\n"
HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
_ID = re.compile(r"^[0-9a-z]{26}$")
_TERMINAL = {state.value for state in JobState if state.terminal}


WAIT_SCHEMA: dict[str, Any] = {"type": "integer", "minimum": 1, "maximum": 300}
AFTER = Param("after", "Continue after this event id (as the Last-Event-ID header does)")
LAST_EVENT_ID = Param(
    "Last-Event-ID", "Continue after this event id (sent by EventSource on reconnect)", location="header"
)


def horizon() -> str:
    """The lowest id of ``SETTLED_LAG_SECONDS`` ago: streams send events below it."""
    return str(ULID.from_int(int((time.time() - SETTLED_LAG_SECONDS) * 1000) << 80)).lower()


def render_event(event: Event) -> dict[str, Any]:
    """The public view of an event."""
    return {"id": event.id, "job_id": event.job_id, "type": event.type, "at": event.at.isoformat(), "data": event.data}


def sse(event: Event) -> str:
    """One event in the text/event-stream format."""
    return f"id: {event.id}\nevent: {event.type}\ndata: {json.dumps(render_event(event))}\n\n"


def resume_point(request: Request) -> str | None:
    """The event id to continue after: ``?after=`` or the ``Last-Event-ID`` header; 400 if it is not an id."""
    after = request.query_params.get("after") or request.headers.get("last-event-id") or None
    if after is not None and not _ID.match(after.lower()):
        raise BadRequest("after (or Last-Event-ID) must be an event id")
    return None if after is None else after.lower()


def wait_seconds(request: Request) -> int:
    """``?wait=`` (1-300, default 30): how long the caller's stream stays open without events."""
    raw = request.query_params.get("wait", str(DEFAULT_WAIT_SECONDS))
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_WAIT_SECONDS:
        raise BadRequest(f"wait must be a whole number of seconds from 1 to {MAX_WAIT_SECONDS}")
    return int(raw)


async def job_events(job_id: str, *, after: str | None, jobs: JobStore, events: EventStore) -> AsyncIterator[str]:
    """A job's events after ``after``, as they are recorded, until its terminal state has been sent."""
    beat = time.monotonic()
    try:
        while True:
            recorded = await events.events_after(after, before=horizon(), job_id=job_id, limit=BATCH)
            for event in recorded:
                yield sse(event)
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


async def caller_events(owner: str | None, *, after: str | None, wait: int, events: EventStore) -> AsyncIterator[str]:
    """``owner``'s events (None: everyone's) after ``after``, until none came for ``wait`` seconds."""
    quiet_since = beat = time.monotonic()
    try:
        while True:
            recorded = await events.events_after(after, before=horizon(), owner=owner, limit=BATCH)
            for event in recorded:
                yield sse(event)
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


@resource.endpoint(
    "GET",
    "/jobs/{job_id}/events",
    name="job_events",
    summary="The job's events as Server-Sent Events (state, progress, log, archive); ends once the job has finished",
    answer=None,
    query=(AFTER, LAST_EVENT_ID),
    media_type=EVENT_STREAM,
)
async def job_stream(request: Request) -> Response:
    """GET /v1/jobs/{job_id}/events: the job's events as Server-Sent Events, ending once it has finished."""
    stores = deps(request).stores
    after = resume_point(request)
    job = await stores.jobs.get_job(request.path_params["job_id"], owner=principal(request).owner_filter)
    stream = job_events(job.id, after=after, jobs=stores.jobs, events=stores.events)
    return StreamingResponse(stream, media_type="text/event-stream", headers=HEADERS)


@resource.endpoint(
    "GET",
    "/events",
    summary="The caller's job events (an admin's: all) as Server-Sent Events; ends after `wait` seconds without one",
    answer=None,
    query=(
        AFTER,
        LAST_EVENT_ID,
        Param("wait", "Seconds without events before the stream ends, 1-300 (default 30)", WAIT_SCHEMA),
    ),
    media_type=EVENT_STREAM,
)
async def caller_stream(request: Request) -> Response:
    """GET /v1/events: the caller's job events (an admin's: all) as Server-Sent Events, ending when quiet."""
    after, wait = resume_point(request), wait_seconds(request)
    stream = caller_events(principal(request).owner_filter, after=after, wait=wait, events=deps(request).stores.events)
    return StreamingResponse(stream, media_type="text/event-stream", headers=HEADERS)
