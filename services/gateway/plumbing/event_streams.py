"""Job events as text/event-stream, each with its id, so ``Last-Event-ID`` (or ``?after=``) resumes a stream.

Every surface that streams job events (the native API, the web UI) frames them here; a comment
line keeps an idle connection alive through proxies.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from typing import Any

from starlette.requests import Request
from starlette.responses import StreamingResponse

from services.gateway.deps import deps
from services.gateway.domain.events import KeepAlive
from services.gateway.plumbing.auth import principal, require_admin
from services.gateway.plumbing.endpoints import EVENT_STREAM
from shared.errors import BadRequest
from shared.models import Event

KEEP_ALIVE = ": keep-alive\n\n"
HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
_ID = re.compile(r"^[0-9a-z]{26}$")


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


def event_stream(followed: AsyncIterator[Event | KeepAlive]) -> StreamingResponse:
    """The response that streams the followed events."""
    return StreamingResponse(framed(followed), media_type=EVENT_STREAM, headers=HEADERS)


async def counted_stream(request: Request, followed: AsyncIterator[Event | KeepAlive]) -> StreamingResponse:
    """``event_stream``, counted against the caller's event streams quota on this gateway (429 past it)."""
    d, who = deps(request), principal(request).user_id
    d.streams.check(who, await d.quotas(who))
    return event_stream(d.streams.counted(who, followed))


def resume_point(request: Request, *, header_first: bool = False) -> str | None:
    """The event id to continue after: ``?after=`` or the ``Last-Event-ID`` header; 400 if it is not an id.

    ``header_first`` serves pages whose ``EventSource`` URL names where the page left off: on
    reconnecting, the browser's ``Last-Event-ID`` is further on.
    """
    query, header = request.query_params.get("after"), request.headers.get("last-event-id")
    after = (header or query if header_first else query or header) or None
    if after is not None and not _ID.match(after.lower()):
        raise BadRequest("after (or Last-Event-ID) must be an event id")
    return None if after is None else after.lower()


def followed_owner(request: Request) -> str | None:
    """Whose events a caller's stream follows: their own, or everyone's (None) for an admin asking ``?all=true``."""
    everyone = request.query_params.get("all", "false").lower()
    if everyone not in ("true", "false"):
        raise BadRequest("all must be true or false")
    who = principal(request)
    if everyone == "true":
        require_admin(who)
        return None
    return who.user_id
