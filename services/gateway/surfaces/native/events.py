"""Server-Sent Events: one job's events until it has finished, or all of the caller's until they go quiet.

domain/events.py follows the events and plumbing/event_streams.py frames them, each with its id,
so ``Last-Event-ID`` (or ``?after=``) resumes where a client left off. Both streams end on their
own (a job's once its terminal state is sent, the caller's after ``wait`` seconds without events),
and both end once the caller's credential lapses (checked every STREAM_RECHECK_SECONDS).
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from services.gateway.deps import deps
from services.gateway.domain.events import caller_events, follow_job
from services.gateway.plumbing.auth import credential_watch, principal
from services.gateway.plumbing.endpoints import EVENT_STREAM, Param, Resource
from services.gateway.plumbing.event_streams import counted_stream, followed_owner, resume_point
from shared.errors import BadRequest

resource = Resource("jobs")
DEFAULT_WAIT_SECONDS = 30
MAX_WAIT_SECONDS = 300


WAIT_SCHEMA: dict[str, Any] = {"type": "integer", "minimum": 1, "maximum": 300}
AFTER = Param("after", "Continue after this event id (as the Last-Event-ID header does)")
LAST_EVENT_ID = Param(
    "Last-Event-ID", "Continue after this event id (sent by EventSource on reconnect)", location="header"
)


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
    errors=(429,),
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
        check=credential_watch(request),
    )
    return await counted_stream(request, followed)


@resource.endpoint(
    "GET",
    "/events",
    summary="The caller's job events (an admin asking `all=true`: everyone's) as Server-Sent Events; "
    "ends after `wait` seconds without one",
    answer=None,
    query=(
        AFTER,
        LAST_EVENT_ID,
        Param("wait", "Seconds without events before the stream ends, 1-300 (default 30)", WAIT_SCHEMA),
        Param("all", "true: every user's events (admins only); default false", {"type": "boolean"}),
    ),
    errors=(403, 429),
    media_type=EVENT_STREAM,
)
async def caller_stream(request: Request) -> Response:
    """GET /v1/events: the caller's job events (an admin's, with ?all=true: everyone's), ending when quiet."""
    after, wait, owner = resume_point(request), wait_seconds(request), followed_owner(request)
    events = deps(request).stores.events
    followed = caller_events(owner, after=after, wait=wait, events=events, check=credential_watch(request))
    return await counted_stream(request, followed)
