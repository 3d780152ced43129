"""Queues: a user's named queues, with a default; create, pause, resume, retry, recover, counts, delete."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import Response

from services.gateway.deps import deps
from services.gateway.domain.queues import (
    QueueRef,
    RetryRequest,
    create_queue,
    delete_queue,
    describe_queue,
    find_queue,
    pause_queue,
    queue_page,
    recover_jobs,
    retry_jobs,
)
from services.gateway.domain.submission import QueueName
from services.gateway.plumbing.answers import Out, Reply
from services.gateway.plumbing.auth import principal
from services.gateway.plumbing.bodies import parse_model, read_body
from services.gateway.plumbing.endpoints import Param, Resource
from services.gateway.plumbing.links import link
from services.gateway.plumbing.pages import PAGED, PageOut, page_request, paged
from services.gateway.plumbing.params import flag
from shared.models import JobState, Queue

resource = Resource("queues")
MAX_BODY_BYTES = 64 * 1024


class QueueRequest(BaseModel):
    """The body of POST /v1/queues."""

    model_config = ConfigDict(extra="forbid")
    name: QueueName
    description: str = Field(default="", max_length=1000)


class QueueLinks(Out):
    self: str
    jobs: str = Field(description="the queue's jobs")


class UserQueueOut(Out):
    id: str
    url: str
    owner: str
    name: str
    description: str
    paused: bool
    created: str
    updated: str
    counts: dict[str, int] = Field(description="jobs per state")
    total: int
    links: QueueLinks


class UserQueuePage(PageOut[UserQueueOut]):
    pass  # a docstring would become the schema's description in the OpenAPI document


class RetryOut(Out):
    retried: list[str] = Field(description="jobs put back to QUEUED")
    skipped: list[str] = Field(description="jobs still being packaged, or changed meanwhile; retry again later")
    more: bool = Field(description="more jobs matched than the limit; call again")


class RecoverOut(Out):
    recovered: list[str] = Field(description="RUNNING jobs of gone workers put back to QUEUED")


def render_queue(request: Request, queue: Queue, counts: dict[str, int]) -> UserQueueOut:
    """The public view of a queue, with its jobs counted per state."""
    url = link(request, "queue", queue_id=queue.id)
    by_state = {state.value: counts.get(state.value, 0) for state in JobState}
    return UserQueueOut(
        id=queue.id,
        url=url,
        owner=queue.owner,
        name=queue.name,
        description=queue.description,
        paused=queue.paused,
        created=queue.created.isoformat(),
        updated=queue.updated.isoformat(),
        counts=by_state,
        total=sum(by_state.values()),
        links=QueueLinks(self=url, jobs=str(request.url_for("jobs").include_query_params(queue=queue.name))),
    )


def queue_ref(request: Request) -> QueueRef:
    """The queue in the path (an id, or a name of the caller's), and who asks."""
    who = principal(request)
    return QueueRef(request.path_params["queue_id"], caller=who.user_id, owner=who.owner_filter)


@resource.endpoint(
    "POST",
    "/queues",
    summary="Create a queue (409 if you have one of that name)",
    answer=UserQueueOut,
    status=201,
    body=QueueRequest,
    errors=(409,),
)
async def create(request: Request) -> Reply[UserQueueOut]:
    """POST /v1/queues: 201, or 409 if the caller has a queue of that name."""
    body = parse_model(await read_body(request, MAX_BODY_BYTES), QueueRequest)
    queue = await create_queue(
        queues=deps(request).stores.queues,
        owner=principal(request).user_id,
        name=body.name,
        description=body.description,
    )
    rendered = render_queue(request, queue, {})
    return Reply(rendered, headers={"Location": rendered.url})


@resource.endpoint(
    "GET",
    "/queues",
    summary="The caller's queues (an admin's: everyone's) with job counts per state; the default queue always shows",
    answer=UserQueuePage,
    query=PAGED,
)
async def list_queues(request: Request) -> UserQueuePage:
    """GET /v1/queues: the caller's queues (an admin's: everyone's), newest first, with counts."""
    who, wanted = principal(request), page_request(request)
    found = await queue_page(
        queues=deps(request).stores.queues,
        caller=who.user_id,
        owner=who.owner_filter,
        limit=wanted.limit,
        after=wanted.after,
    )
    return paged(request, found.page, lambda queue: render_queue(request, queue, found.counts[queue.id]), UserQueuePage)


@resource.endpoint(
    "GET", "/queues/{queue_id}", name="queue", summary="A queue, with job counts per state", answer=UserQueueOut
)
async def describe(request: Request) -> UserQueueOut:
    """GET /v1/queues/{queue_id}."""
    found = await describe_queue(queue_ref(request), queues=deps(request).stores.queues)
    return render_queue(request, found.queue, found.counts)


async def _set_paused(request: Request, paused: bool) -> UserQueueOut:
    d = deps(request)
    found = await pause_queue(queue_ref(request), queues=d.stores.queues, paused=paused, wake=d.wake)
    return render_queue(request, found.queue, found.counts)


@resource.endpoint(
    "POST", "/queues/{queue_id}/pause", summary="Pause: nothing new starts; running jobs finish", answer=UserQueueOut
)
async def pause(request: Request) -> UserQueueOut:
    """POST /v1/queues/{queue_id}/pause: nothing new starts; running jobs finish."""
    return await _set_paused(request, True)


@resource.endpoint("POST", "/queues/{queue_id}/resume", summary="Resume a paused queue", answer=UserQueueOut)
async def resume(request: Request) -> UserQueueOut:
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
    d = deps(request)
    force = flag(request, "force")
    await delete_queue(
        queue_ref(request),
        queues=d.stores.queues,
        jobs=d.stores.jobs,
        events=d.stores.events,
        storage=d.storage,
        force=force,
        who=principal(request).username,
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
async def retry(request: Request) -> RetryOut:
    """POST /v1/queues/{queue_id}/retry: failed jobs (or those in ``states``) go back to QUEUED."""
    d = deps(request)
    # The queue is found before the body is read: a missing queue is 404 whatever the body says.
    queue = await find_queue(queue_ref(request), queues=d.stores.queues)
    raw = await read_body(request, MAX_BODY_BYTES)
    wanted = parse_model(raw, RetryRequest) if raw.strip() else RetryRequest()
    result = await retry_jobs(
        queues=d.stores.queues,
        jobs=d.stores.jobs,
        events=d.stores.events,
        storage=d.storage,
        queue=queue,
        wanted=wanted,
        by=principal(request).username,
        wake=d.wake,
    )
    return RetryOut(retried=result.retried, skipped=result.skipped, more=result.more)


@resource.endpoint(
    "POST",
    "/queues/{queue_id}/recover",
    summary="Put the queue's RUNNING jobs whose worker stopped heartbeating back to QUEUED",
    answer=RecoverOut,
)
async def recover(request: Request) -> RecoverOut:
    """POST /v1/queues/{queue_id}/recover: RUNNING jobs whose worker stopped heartbeating go back to QUEUED."""
    d = deps(request)
    result = await recover_jobs(
        queue_ref(request),
        workers=d.stores.workers,
        queues=d.stores.queues,
        jobs=d.stores.jobs,
        events=d.stores.events,
        storage=d.storage,
        heartbeat_seconds=d.settings.worker_heartbeat_seconds,
        by=principal(request).username,
        wake=d.wake,
    )
    return RecoverOut(recovered=result.recovered)
