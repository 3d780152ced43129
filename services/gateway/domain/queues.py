"""A user's named queues: found by id or name, created, paused, counted, deleted, retried, recovered from dead workers.

Every user has a queue called ``default``, made the first time anything asks for it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import structlog
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from services.gateway.domain.cancellation import cancel_job, still_busy
from services.gateway.domain.requeues import requeue
from services.gateway.domain.submission import check_queues
from shared.errors import Conflict, Duplicate, Invalid, NotFound, NotYet, Violation
from shared.models import DEFAULT_QUEUE, JobState, Queue, job_prefix, new_id, utcnow
from shared.storage import ObjectStorage
from shared.store.database import Page
from shared.store.events import EventStore
from shared.store.jobs import JobStore
from shared.store.queues import QueueStore
from shared.store.workers import WorkerStore

log = structlog.get_logger()
RETRYABLE = (JobState.FAILED, JobState.TIMED_OUT, JobState.CANCELED)
ID_SHAPED = re.compile(r"^[0-9a-z]{26}$")


class RetryRequest(BaseModel):
    """The optional body of POST /v1/queues/{id}/retry."""

    model_config = ConfigDict(extra="forbid")
    states: list[JobState] = Field(default=[JobState.FAILED], min_length=1, description="FAILED, TIMED_OUT, CANCELED")
    limit: int = Field(default=1000, ge=1, le=10_000, description="at most this many jobs per call")


@dataclass(frozen=True)
class QueueRef:
    """A queue as a caller names it: by its id, or by the name of one of the caller's own queues."""

    id_or_name: str
    caller: str  # the caller's user id: whose queue names count, and who gets a default queue
    owner: str | None  # whose queue ids count: the caller's, or anyone's (None) for an admin


@dataclass(frozen=True)
class CountedQueue:
    """A queue with its jobs counted per state (states without jobs left out)."""

    queue: Queue
    counts: dict[str, int]


@dataclass(frozen=True)
class CountedPage:
    """A page of queues with each one's jobs counted per state, by queue id."""

    page: Page[Queue]
    counts: dict[str, dict[str, int]]


@dataclass(frozen=True)
class Retried:
    """What a retry put back to QUEUED, what it left for later, and whether more jobs matched than it took."""

    retried: list[str]
    skipped: list[str]
    more: bool


@dataclass(frozen=True)
class Recovered:
    """The RUNNING jobs of gone workers that a recovery put back to QUEUED."""

    recovered: list[str]


async def find_queue(ref: QueueRef, *, queues: QueueStore) -> Queue:
    """The queue by id (the owner's), else by the caller's own queue name; NotFound naming the reference."""
    try:
        return await queues.get_queue(ref.id_or_name, owner=ref.owner)
    except NotFound:
        if ref.id_or_name == DEFAULT_QUEUE:
            await check_queues({DEFAULT_QUEUE}, owner=ref.caller, queues=queues)  # everyone has one, made on first use
        by_name = await queues.find_queue(owner=ref.caller, name=ref.id_or_name)
        if by_name is None:
            raise
        return by_name


def check_queue_name(name: str) -> None:
    """Queues are addressed by id or name, so a name must never read as an id: Invalid if it does."""
    if ID_SHAPED.match(name):
        detail = "must not look like an id (26 lowercase letters and digits)"
        raise Invalid(f"name {detail}", [Violation("/name", detail)])


async def create_queue(*, queues: QueueStore, owner: str, name: str, description: str) -> Queue:
    """A new, empty queue of ``owner``'s; Invalid if the name looks like an id, Duplicate if they have one so called."""
    check_queue_name(name)
    now = utcnow()
    queue = Queue(id=new_id(), owner=owner, name=name, description=description, created=now, updated=now)
    try:
        await queues.insert_queue(queue)
    except Duplicate:
        raise Duplicate(f"you already have a queue called {name!r}") from None
    log.info("queue_created", queue_id=queue.id, name=queue.name)
    return queue


async def queue_page(
    *, queues: QueueStore, caller: str, owner: str | None, limit: int, after: str | None
) -> CountedPage:
    """``owner``'s queues (None: everyone's), newest first, counted; the caller's default queue always shows."""
    await check_queues({DEFAULT_QUEUE}, owner=caller, queues=queues)
    page = await queues.list_queues(owner=owner, limit=limit, after=after)
    return CountedPage(page, await queues.queue_counts(page.items))


async def _counted(queue: Queue, *, queues: QueueStore) -> CountedQueue:
    counts = await queues.queue_counts([queue])
    return CountedQueue(queue, counts[queue.id])


async def describe_queue(ref: QueueRef, *, queues: QueueStore) -> CountedQueue:
    """The queue, with its jobs counted per state."""
    return await _counted(await find_queue(ref, queues=queues), queues=queues)


async def pause_queue(ref: QueueRef, *, queues: QueueStore, paused: bool, wake: Callable[[], None]) -> CountedQueue:
    """Pause the queue (nothing new starts; running jobs finish) or resume it, waking the dispatcher."""
    queue = await queues.set_queue_paused((await find_queue(ref, queues=queues)).id, owner=None, paused=paused)
    log.info("queue_paused" if paused else "queue_resumed", queue_id=queue.id)
    if not paused:
        wake()
    return await _counted(queue, queues=queues)


async def delete_queue(
    ref: QueueRef,
    *,
    queues: QueueStore,
    jobs: JobStore,
    events: EventStore,
    storage: ObjectStorage,
    force: bool,
    who: str,
) -> None:
    """Delete an empty queue; with ``force``, its jobs too (409 while running ones are being stopped).

    Jobs that never started left nothing in S3 and go in one delete; the others are canceled if
    needed, and deleted with their objects once nothing writes under their prefix any more.
    """
    queue = await find_queue(ref, queues=queues)
    if queue.name == DEFAULT_QUEUE:
        raise Conflict("the default queue cannot be deleted")
    if not force and (held := sum((await queues.queue_counts([queue]))[queue.id].values())):
        raise Conflict(f"queue {queue.name!r} holds {held} jobs; delete them first, or pass force=true")
    unstarted = await queues.delete_unstarted_jobs(owner=queue.owner, queue=queue.name)
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
    log.info("queue_deleted", queue_id=queue.id, jobs=unstarted + len(remaining))


def check_retryable(states: list[JobState]) -> None:
    """Only jobs that ended without succeeding can be retried: Invalid pointing at each other state."""
    for i, state in enumerate(states):
        if state not in RETRYABLE:
            detail = "only FAILED, TIMED_OUT and CANCELED jobs can be retried"
            raise Invalid(detail, [Violation(f"/states/{i}", detail)])


async def retry_jobs(
    *,
    queues: QueueStore,
    jobs: JobStore,
    events: EventStore,
    storage: ObjectStorage,
    queue: Queue,
    wanted: RetryRequest,
    by: str,
    wake: Callable[[], None],
) -> Retried:
    """Put the queue's jobs in ``wanted.states`` back to QUEUED; ones still being packaged are skipped."""
    check_retryable(wanted.states)
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
    wake()
    return Retried(retried, skipped, more=len(ids) > wanted.limit)


async def recover_jobs(
    ref: QueueRef,
    *,
    workers: WorkerStore,
    queues: QueueStore,
    jobs: JobStore,
    events: EventStore,
    storage: ObjectStorage,
    heartbeat_seconds: float,
    by: str,
    wake: Callable[[], None],
) -> Recovered:
    """Put the queue's RUNNING jobs whose worker is gone (no heartbeat) back to QUEUED."""
    queue = await find_queue(ref, queues=queues)
    live = {worker.id for worker in await workers.live_workers(heartbeat_seconds)}
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
    wake()
    return Recovered(recovered)
