"""Queues: a user's named queues, with a default; create, pause, resume, retry, recover, counts, delete."""

from __future__ import annotations

import re
from typing import Any

import structlog
from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from services.gateway.deps import deps
from services.gateway.domain.queues import RETRYABLE, RetryRequest, delete_queue, recover_jobs, retry_jobs
from services.gateway.domain.submission import QueueName, check_queues
from services.gateway.plumbing.auth import principal
from services.gateway.plumbing.bodies import parse_model, read_body
from services.gateway.plumbing.endpoints import Param, Resource
from services.gateway.plumbing.links import link
from services.gateway.plumbing.pages import PAGED, page_request, page_response
from services.gateway.plumbing.params import flag
from services.gateway.surfaces.native.schemas import RecoverOut, RetryOut, UserQueueOut, UserQueuePage
from shared.errors import Duplicate, Invalid, NotFound, Violation
from shared.models import DEFAULT_QUEUE, JobState, Queue, new_id, utcnow
from shared.store.queues import QueueStore

log = structlog.get_logger()

resource = Resource("queues")
MAX_BODY_BYTES = 64 * 1024
ID_SHAPED = re.compile(r"^[0-9a-z]{26}$")


class QueueRequest(BaseModel):
    """The body of POST /v1/queues."""

    model_config = ConfigDict(extra="forbid")
    name: QueueName
    description: str = Field(default="", max_length=1000)


def render_queue(request: Request, queue: Queue, counts: dict[str, int]) -> dict[str, Any]:
    """The public view of a queue, with its jobs counted per state."""
    url = link(request, "queue", queue_id=queue.id)
    by_state = {state.value: counts.get(state.value, 0) for state in JobState}
    return {
        "id": queue.id,
        "url": url,
        "owner": queue.owner,
        "name": queue.name,
        "description": queue.description,
        "paused": queue.paused,
        "created": queue.created.isoformat(),
        "updated": queue.updated.isoformat(),
        "counts": by_state,
        "total": sum(by_state.values()),
        "links": {"self": url, "jobs": str(request.url_for("jobs").include_query_params(queue=queue.name))},
    }


async def find_queue(request: Request) -> Queue:
    """The queue in the path: by id (the caller's, or anyone's for an admin), else by the caller's own queue name."""
    who, queues = principal(request), deps(request).stores.queues
    ref = request.path_params["queue_id"]
    try:
        return await queues.get_queue(ref, owner=who.owner_filter)
    except NotFound:
        if ref == DEFAULT_QUEUE:
            await check_queues({DEFAULT_QUEUE}, owner=who.user_id, queues=queues)  # everyone has one, made on first use
        by_name = await queues.find_queue(owner=who.user_id, name=ref)
        if by_name is None:
            raise
        return by_name


async def _render(request: Request, queue: Queue, *, queues: QueueStore) -> dict[str, Any]:
    counts = await queues.queue_counts([queue])
    return render_queue(request, queue, counts[queue.id])


@resource.endpoint(
    "POST",
    "/queues",
    summary="Create a queue (409 if you have one of that name)",
    answer=UserQueueOut,
    status=201,
    body=QueueRequest,
    errors=(409,),
)
async def create(request: Request) -> Response:
    """POST /v1/queues: 201, or 409 if the caller has a queue of that name."""
    queues, owner = deps(request).stores.queues, principal(request).user_id
    body = parse_model(await read_body(request, MAX_BODY_BYTES), QueueRequest)
    if ID_SHAPED.match(body.name):  # queues are addressed by id or name: a name must never read as an id
        detail = "must not look like an id (26 lowercase letters and digits)"
        raise Invalid(f"name {detail}", [Violation("/name", detail)])
    now = utcnow()
    queue = Queue(id=new_id(), owner=owner, name=body.name, description=body.description, created=now, updated=now)
    try:
        await queues.insert_queue(queue)
    except Duplicate:
        raise Duplicate(f"you already have a queue called {body.name!r}") from None
    log.info("queue_created", queue_id=queue.id, name=queue.name)
    rendered = render_queue(request, queue, {})
    return JSONResponse(rendered, status_code=201, headers={"Location": rendered["url"]})


@resource.endpoint(
    "GET",
    "/queues",
    summary="The caller's queues (an admin's: everyone's) with job counts per state; the default queue always shows",
    answer=UserQueuePage,
    query=PAGED,
)
async def list_queues(request: Request) -> Response:
    """GET /v1/queues: the caller's queues (an admin's: everyone's), newest first, with counts."""
    who, queues = principal(request), deps(request).stores.queues
    wanted = page_request(request)
    await check_queues({DEFAULT_QUEUE}, owner=who.user_id, queues=queues)  # the default queue always shows
    page = await queues.list_queues(owner=who.owner_filter, limit=wanted.limit, after=wanted.after)
    counts = await queues.queue_counts(page.items)
    return page_response(request, page, lambda queue: render_queue(request, queue, counts[queue.id]))


@resource.endpoint(
    "GET", "/queues/{queue_id}", name="queue", summary="A queue, with job counts per state", answer=UserQueueOut
)
async def describe(request: Request) -> Response:
    """GET /v1/queues/{queue_id}."""
    queue = await find_queue(request)
    return JSONResponse(await _render(request, queue, queues=deps(request).stores.queues))


async def _set_paused(request: Request, paused: bool) -> Response:
    queues = deps(request).stores.queues
    queue = await queues.set_queue_paused((await find_queue(request)).id, owner=None, paused=paused)
    log.info("queue_paused" if paused else "queue_resumed", queue_id=queue.id)
    if not paused:
        deps(request).wake()
    return JSONResponse(await _render(request, queue, queues=queues))


@resource.endpoint(
    "POST", "/queues/{queue_id}/pause", summary="Pause: nothing new starts; running jobs finish", answer=UserQueueOut
)
async def pause(request: Request) -> Response:
    """POST /v1/queues/{queue_id}/pause: nothing new starts; running jobs finish."""
    return await _set_paused(request, True)


@resource.endpoint("POST", "/queues/{queue_id}/resume", summary="Resume a paused queue", answer=UserQueueOut)
async def resume(request: Request) -> Response:
    """POST /v1/queues/{queue_id}/resume."""
    return await _set_paused(request, False)


@resource.endpoint(
    "DELETE",
    "/queues/{queue_id}",
    summary="Delete an empty queue; with force=true, cancel and delete its jobs too (409 while some are being stopped)",
    answer=None,
    status=204,
    query=(Param("force", "1/true/yes: delete the queue's jobs as well"),),
    errors=(409,),
)
async def remove(request: Request) -> Response:
    """DELETE /v1/queues/{queue_id}[?force=true]: 204."""
    d, who = deps(request), principal(request)
    force = flag(request, "force")
    queue = await find_queue(request)
    await delete_queue(
        queues=d.stores.queues,
        jobs=d.stores.jobs,
        events=d.stores.events,
        storage=d.storage,
        queue=queue,
        force=force,
        who=who.username,
    )
    return Response(status_code=204)


@resource.endpoint(
    "POST",
    "/queues/{queue_id}/retry",
    summary="Put the queue's FAILED jobs (or those in `states`) back to QUEUED; their old outputs are deleted",
    answer=RetryOut,
    body=RetryRequest,
    body_optional=True,
)
async def retry(request: Request) -> Response:
    """POST /v1/queues/{queue_id}/retry: failed jobs (or those in ``states``) go back to QUEUED."""
    d, who = deps(request), principal(request)
    queue = await find_queue(request)
    raw = await read_body(request, MAX_BODY_BYTES)
    wanted = parse_model(raw, RetryRequest) if raw.strip() else RetryRequest()
    for i, state in enumerate(wanted.states):
        if state not in RETRYABLE:
            detail = "only FAILED, TIMED_OUT and CANCELED jobs can be retried"
            raise Invalid(detail, [Violation(f"/states/{i}", detail)])
    result = await retry_jobs(
        queues=d.stores.queues,
        jobs=d.stores.jobs,
        events=d.stores.events,
        storage=d.storage,
        queue=queue,
        wanted=wanted,
        by=who.username,
    )
    d.wake()
    return JSONResponse(result)


@resource.endpoint(
    "POST",
    "/queues/{queue_id}/recover",
    summary="Put the queue's RUNNING jobs whose worker stopped heartbeating back to QUEUED",
    answer=RecoverOut,
)
async def recover(request: Request) -> Response:
    """POST /v1/queues/{queue_id}/recover: RUNNING jobs whose worker stopped heartbeating go back to QUEUED."""
    d, who = deps(request), principal(request)
    queue = await find_queue(request)
    result = await recover_jobs(
        workers=d.stores.workers,
        queues=d.stores.queues,
        jobs=d.stores.jobs,
        events=d.stores.events,
        storage=d.storage,
        queue=queue,
        heartbeat_seconds=d.settings.worker_heartbeat_seconds,
        by=who.username,
    )
    d.wake()
    return JSONResponse(result)
