"""The reaper: RUNNING jobs of workers that stopped heartbeating run again, or fail after their last attempt."""

from __future__ import annotations

from datetime import timedelta

import structlog

from services.gateway.domain.requeues import recover
from shared.broker import Broker
from shared.models import MISSED_BEATS, utcnow
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
    live_workers: list[str],
    heartbeat_seconds: float,
    max_attempts: int,
) -> None:
    """Recover the RUNNING jobs of workers not in ``live_workers``: run again, or FAILED after the last attempt.

    A job claimed within the last three heartbeats is left alone: its worker may not have
    reported yet. The app of a dead runner died with it (the kernel kills it), and a runner
    that was only cut off stops the app once it sees the job is no longer its own.
    """
    started_before = utcnow() - timedelta(seconds=MISSED_BEATS * heartbeat_seconds)
    for job in await dispatch.orphaned_jobs(live_workers=live_workers, started_before=started_before):
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
