"""Forcing a job's state (admins only), to unstick a job; every forced change is kept in the job's history."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import structlog
from pydantic import BaseModel, ConfigDict, Field

from services.gateway.domain.announcements import announce_end
from services.gateway.domain.cancellation import still_busy
from services.gateway.domain.requeues import requeue
from shared.broker import Broker
from shared.errors import Conflict, Forbidden, NotYet
from shared.models import Job, JobState, StateChange, job_event, state_event, utcnow
from shared.storage import ObjectStorage
from shared.store.events import EventStore
from shared.store.jobs import JobStore

log = structlog.get_logger()


class ForcedState(BaseModel):
    """The body of POST /v1/jobs/{id}/state."""

    model_config = ConfigDict(extra="forbid")
    state: JobState
    reason: str = Field(min_length=1, max_length=1000, pattern=r"\S")


async def force_state(
    *,
    jobs: JobStore,
    events: EventStore,
    storage: ObjectStorage,
    broker: Broker,
    wake: Callable[[], None],
    job_id: str,
    owner: str | None,
    admin: bool,
    by: str,
    wanted: Callable[[], Awaitable[ForcedState]],
) -> Job:
    """Force the job to the state ``wanted`` reads, then wake the dispatcher; only an admin may.

    The checks keep their order: a job the caller may not see is NotFound, then a non-admin is
    Forbidden, and only then is ``wanted`` read (so its own errors come last).
    """
    job = await jobs.get_job(job_id, owner=owner)
    if not admin:
        raise Forbidden()
    forced = await _force(
        jobs=jobs, events=events, storage=storage, job=job, wanted=await wanted(), by=by, broker=broker
    )
    wake()
    return forced


async def _force(
    *,
    jobs: JobStore,
    events: EventStore,
    storage: ObjectStorage,
    job: Job,
    wanted: ForcedState,
    by: str,
    broker: Broker,
) -> Job:
    """Move ``job`` to ``wanted.state`` and record who did it and why; 409 if it is there already or moved meanwhile.

    Forcing QUEUED runs the job again from scratch, as a queue retry does; a RUNNING job must be
    ended first, so two runs never overlap.
    """
    if job.state is wanted.state:
        raise Conflict(f"job {job.id} is already {job.state.value}")
    if wanted.state is JobState.QUEUED:
        return await _force_queued(jobs=jobs, events=events, storage=storage, job=job, wanted=wanted, by=by)
    change = StateChange.model_validate(
        {"at": utcnow(), "from": job.state, "to": wanted.state, "by": by, "reason": wanted.reason}
    )
    forced = await jobs.force_state(job, change)
    if forced is None:
        raise NotYet(f"job {job.id} changed state meanwhile; look at it again", retry_after=1)
    # Followers of the job's events see the forced state too, with the admin's reason, not the run's.
    data = state_event(forced).data | {"reason": wanted.reason, "forced_by": by}
    await events.record_events([job_event(forced, "state", data)])
    log.warning("job_state_forced", job_id=job.id, state_from=job.state.value, state_to=wanted.state.value, by=by)
    if forced.state.terminal and job.state is not JobState.RUNNING:
        await announce_end(broker, forced)  # a forced end of a running job is announced once its run is packaged
    return forced


async def _force_queued(
    *, jobs: JobStore, events: EventStore, storage: ObjectStorage, job: Job, wanted: ForcedState, by: str
) -> Job:
    if job.state is JobState.RUNNING:
        raise Conflict(f"job {job.id} is RUNNING: force it to FAILED or CANCELED first, then to QUEUED")
    busy = still_busy(job)
    if busy is not None:
        raise NotYet(busy, retry_after=2)
    requeued = await requeue(jobs=jobs, events=events, storage=storage, job=job, by=by, reason=wanted.reason)
    if requeued is None:
        raise NotYet(f"job {job.id} changed state meanwhile; look at it again", retry_after=1)
    log.warning("job_state_forced", job_id=job.id, state_from=job.state.value, state_to="QUEUED", by=by)
    return requeued
