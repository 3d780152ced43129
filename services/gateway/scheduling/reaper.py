"""The reaper: RUNNING jobs whose lease lapsed run again, or fail after their last attempt."""

from __future__ import annotations

from datetime import datetime

import structlog

from services.gateway.domain.requeues import recover
from shared.broker import Broker
from shared.storage import ObjectStorage
from shared.store.dispatch import DispatchStore
from shared.store.events import EventStore
from shared.store.jobs import JobStore

log = structlog.get_logger()


async def reap(
    *,
    dispatch: DispatchStore,
    jobs: JobStore,
    events: EventStore,
    storage: ObjectStorage,
    broker: Broker,
    lease_seconds: float,
    max_attempts: int,
    now: datetime,
) -> None:
    """Recover the RUNNING jobs whose lease lapsed: run again, or FAILED after the last attempt.

    A lease is renewed by the runner holding the run, by the database's clock, so neither a
    worker's clock nor its heartbeat decides. The app of a dead runner died with it (the kernel
    kills it); a runner that could not renew stopped the app before the lease lapsed, and a
    stale run's finish is refused (its run token is no longer the job's). ``now`` is the database's time.
    """
    for job in await dispatch.orphaned_jobs(lease_seconds=lease_seconds, now=now):
        outcome = await recover(
            jobs=jobs,
            events=events,
            dispatch=dispatch,
            storage=storage,
            broker=broker,
            job=job,
            by="reaper",
            max_attempts=max_attempts,
        )
        if outcome is not None:
            log.warning(
                "job_reaped", job_id=job.id, worker=job.worker, state=outcome.state.value, attempt=outcome.attempt
            )
