"""Server-Sent Events: one job's events until it has finished, or all of the caller's until they go quiet.

domain/events.py follows the events; this module frames them as text/event-stream, each with its
id, so ``Last-Event-ID`` (or ``?after=``) resumes where a client left off. Both streams end on
their own (a job's once its terminal state is sent, the caller's after ``wait`` seconds without
events); a comment line keeps an idle connection alive through proxies.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from typing import Any

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from services.gateway.deps import deps
from services.gateway.domain.events import KeepAlive, caller_events, follow_job
from services.gateway.plumbing.auth import principal
from services.gateway.plumbing.endpoints import EVENT_STREAM, Param, Resource
from shared.errors import BadRequest
from shared.models import Event

resource = Resource("jobs")
DEFAULT_WAIT_SECONDS = 30
MAX_WAIT_SECONDS = 300
KEEP_ALIVE = ": keep-alive\n\n"
HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
_ID = re.compile(r"^[0-9a-z]{26}$")


WAIT_SCHEMA: dict[str, Any] = {"type": "integer", "minimum": 1, "maximum": 300}
AFTER = Param("after", "Continue after this event id (as the Last-Event-ID header does)")
LAST_EVENT_ID = Param(
    "Last-Event-ID", "Continue after this event id (sent by EventSource on reconnect)", location="header"
)


def render_event(event: Event) -> dict[str, Any]:
    """The public view of an event."""
    return {"id": event.id, "job_id": event.job_id, "type": event.type, "at": event.at.isoformat(), "data": event.data}


def sse(event: Event) -> str:
    """One event in the text/event-stream format."""
    return f"id: {event.id}\nevent: {event.type}\ndata: {json.dumps(render_event(event))}\n\n"


async def framed(followed: AsyncIterator[Event | KeepAlive]) -> AsyncIterator[str]:
    """The followed events as text/event-stream, a keep-alive tick as a comment line."""
    async for item in followed:
        yield KEEP_ALIVE if isinstance(item, KeepAlive) else sse(item)


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
    followed = await follow_job(
        request.path_params["job_id"],
        owner=principal(request).owner_filter,
        after=after,
        jobs=stores.jobs,
        events=stores.events,
    )
    return StreamingResponse(framed(followed), media_type=EVENT_STREAM, headers=HEADERS)


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
    owner, events = principal(request).owner_filter, deps(request).stores.events
    followed = caller_events(owner, after=after, wait=wait, events=events)
    return StreamingResponse(framed(followed), media_type=EVENT_STREAM, headers=HEADERS)
