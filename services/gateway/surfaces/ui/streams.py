"""The UI's live views: a job's events, and all of the user's, as Server-Sent Events on the page's own origin.

The same followers as the native API's streams (domain/events.py), opened by the session cookie
rather than a bearer token, so a page's ``EventSource`` needs no credential in its URL. Both are
resumable: the browser sends ``Last-Event-ID`` when it reconnects.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from services.gateway.deps import deps
from services.gateway.domain.events import caller_events, follow_job
from services.gateway.plumbing.auth import credential_watch, principal
from services.gateway.plumbing.event_streams import counted_stream, followed_owner, resume_point

QUIET_SECONDS = 60  # the jobs page's stream ends after this long without events; the browser reconnects


async def job_events(request: Request) -> Response:
    """GET /ui/jobs/{job_id}/events: the job's events until it has finished."""
    stores = deps(request).stores
    followed = await follow_job(
        request.path_params["job_id"],
        owner=principal(request).owner_filter,
        after=resume_point(request, header_first=True),
        jobs=stores.jobs,
        events=stores.events,
        check=credential_watch(request),
    )
    return await counted_stream(request, followed)


async def my_events(request: Request) -> Response:
    """GET /ui/events: the user's job events (an admin's, with ?all=true: everyone's), for the jobs page's rows."""
    owner, events = followed_owner(request), deps(request).stores.events
    after, check = resume_point(request, header_first=True), credential_watch(request)
    followed = caller_events(owner, after=after, wait=QUIET_SECONDS, events=events, check=check)
    return await counted_stream(request, followed)
