"""Queues (QDO's): a user's named queues, with a default; pause, resume, retry, recover, counts, delete."""

from __future__ import annotations

import re
from typing import Any

import structlog
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from services.gateway.auth import principal
from services.gateway.bodies import parse_model, read_body
from services.gateway.job_deletion import still_busy
from services.gateway.jobs import QueueName, cancel_job, check_queues
from services.gateway.links import link
from services.gateway.pages import page_request, page_response
from services.gateway.params import flag
from services.gateway.requeues import requeue
from services.gateway.state import deps
from shared.errors import Conflict, Duplicate, Invalid, NotFound, NotYet, Violation
from shared.models import DEFAULT_QUEUE, JobState, Queue, job_prefix, new_id, utcnow
from shared.storage import ObjectStorage
from shared.store.events import EventStore
from shared.store.jobs import JobStore
from shared.store.queues import QueueStore
from shared.store.workers import WorkerStore

log = structlog.get_logger()
MAX_BODY_BYTES = 64 * 1024
ID_SHAPED = re.compile(r"^[0-9a-z]{26}$")
RETRYABLE = (JobState.FAILED, JobState.TIMED_OUT, JobState.CANCELED)


class QueueRequest(BaseModel):
    """The body of POST /v1/queues."""

    model_config = ConfigDict(extra="forbid")
    name: QueueName
    description: str = Field(default="", max_length=1000)


class RetryRequest(BaseModel):
    """The optional body of POST /v1/queues/{id}/retry."""

    model_config = ConfigDict(extra="forbid")
    states: list[JobState] = Field(default=[JobState.FAILED], min_length=1, description="FAILED, TIMED_OUT, CANCELED")
    limit: int = Field(default=1000, ge=1, le=10_000, description="at most this many jobs per call")


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


async def list_queues(request: Request) -> Response:
    """GET /v1/queues: the caller's queues (an admin's: everyone's), newest first, with counts."""
    who, queues = principal(request), deps(request).stores.queues
    wanted = page_request(request)
    await check_queues({DEFAULT_QUEUE}, owner=who.user_id, queues=queues)  # the default queue always shows
    page = await queues.list_queues(owner=who.owner_filter, limit=wanted.limit, after=wanted.after)
    counts = await queues.queue_counts(page.items)
    return page_response(request, page, lambda queue: render_queue(request, queue, counts[queue.id]))


async def describe(request: Request) -> Response:
    """GET /v1/queues/{queue_id}."""
    queue = await find_queue(request)
    return JSONResponse(await _render(request, queue, queues=deps(request).stores.queues))


async def _set_paused(request: Request, paused: bool) -> Response:
    queues = deps(request).stores.queues
    queue = await queues.set_queue_paused((await find_queue(request)).id, owner=None, paused=paused)
    log.info("queue_paused" if paused else "queue_resumed", queue_id=queue.id)
    if not paused:
        deps(request).dispatcher.wake()
    return JSONResponse(await _render(request, queue, queues=queues))


async def pause(request: Request) -> Response:
    """POST /v1/queues/{queue_id}/pause: nothing new starts; running jobs finish."""
    return await _set_paused(request, True)


async def resume(request: Request) -> Response:
    """POST /v1/queues/{queue_id}/resume."""
    return await _set_paused(request, False)


async def delete_queue(
    *,
    queues: QueueStore,
    jobs: JobStore,
    events: EventStore,
    storage: ObjectStorage,
    queue: Queue,
    force: bool,
    who: str,
) -> None:
    """Delete an empty queue; with ``force``, its jobs too (409 while running ones are being stopped).

    Jobs that never started left nothing in S3 and go in one delete; the others are canceled if
    needed, and deleted with their objects once nothing writes under their prefix any more.
    """
    if queue.name == DEFAULT_QUEUE:
        raise Conflict("the default queue cannot be deleted")
    job_ids = await queues.queue_job_ids(queue)
    if job_ids and not force:
        raise Conflict(f"queue {queue.name!r} holds {len(job_ids)} jobs; delete them first, or pass force=true")
    await queues.delete_unstarted_jobs(owner=queue.owner, queue=queue.name)
    remaining = await queues.queue_job_ids(queue)
    canceled = [
        await cancel_job(jobs=jobs, events=events, job_id=job_id, owner=queue.owner, who=who) for job_id in remaining
    ]
    busy = [job.id for job in canceled if still_busy(job) is not None]
    if busy:
        raise NotYet(f"{len(busy)} jobs of queue {queue.name!r} are being stopped; ask again", retry_after=2)
    for job in canceled:
        if job.started is not None:
            await run_in_threadpool(storage.delete_prefix, job_prefix(job.id))
    await jobs.delete_jobs([job.id for job in canceled])
    await queues.delete_queue(queue.id)
    log.info("queue_deleted", queue_id=queue.id, jobs=len(job_ids))


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


async def retry_jobs(
    *,
    queues: QueueStore,
    jobs: JobStore,
    events: EventStore,
    storage: ObjectStorage,
    queue: Queue,
    wanted: RetryRequest,
    by: str,
) -> dict[str, Any]:
    """Put the queue's jobs in ``wanted.states`` back to QUEUED; ones still being packaged are skipped."""
    ids = await queues.queue_job_ids(queue, states=wanted.states)
    retried: list[str] = []
    skipped: list[str] = []
    for job_id in ids[: wanted.limit]:
        job = await jobs.get_job(job_id)
        if still_busy(job) is not None:
            skipped.append(job_id)
            continue
        reason = f"retried in queue {queue.name}"
        done = await requeue(jobs=jobs, events=events, storage=storage, job=job, by=by, reason=reason)
        (retried if done is not None else skipped).append(job_id)
    log.info("queue_retried", queue_id=queue.id, retried=len(retried), skipped=len(skipped))
    return {"retried": retried, "skipped": skipped, "more": len(ids) > wanted.limit}


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
    d.dispatcher.wake()
    return JSONResponse(result)


async def recover_jobs(
    *,
    workers: WorkerStore,
    queues: QueueStore,
    jobs: JobStore,
    events: EventStore,
    storage: ObjectStorage,
    queue: Queue,
    heartbeat_seconds: float,
    by: str,
) -> dict[str, Any]:
    """Put the queue's RUNNING jobs whose worker is gone (no heartbeat) back to QUEUED."""
    live = {worker.id for worker in await workers.list_workers() if worker.alive(heartbeat_seconds)}
    recovered = []
    for job_id in await queues.queue_job_ids(queue, states=[JobState.RUNNING]):
        job = await jobs.get_job(job_id)
        if job.worker in live:
            continue
        reason = f"recovered: worker {job.worker} is gone"
        requeued = await requeue(
            jobs=jobs, events=events, storage=storage, job=job, by=by, reason=reason, attempt=job.attempt + 1
        )
        if requeued is not None:
            recovered.append(job_id)
    log.info("queue_recovered", queue_id=queue.id, recovered=len(recovered))
    return {"recovered": recovered}


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
    d.dispatcher.wake()
    return JSONResponse(result)
