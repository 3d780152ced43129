"""Dependencies between jobs: a job waits until every job it depends on succeeded, and fails if one cannot."""

from __future__ import annotations

import structlog

from services.gateway.domain.announcements import announce_end
from shared.broker import Broker
from shared.models import JobState, state_event
from shared.store.dispatch import DispatchStore
from shared.store.events import EventStore
from shared.store.jobs import JobStore

log = structlog.get_logger()
BAD_ENDS = {JobState.FAILED, JobState.TIMED_OUT, JobState.CANCELED}


async def settle_dependencies(
    *,
    dispatch: DispatchStore,
    jobs: JobStore,
    events: EventStore,
    broker: Broker | None = None,
    waited: list[str] | None = None,
) -> bool:
    """Stop waiting on jobs that succeeded; fail the jobs that wait on one that failed, was canceled or is gone.

    ``waited`` is what QUEUED jobs wait on, if the caller read it already (a pass reads it with its
    dispatch view); else it is read here. Returns whether any job stopped waiting on one that
    succeeded (it may be able to start now).
    """
    released = False
    if waited is None:
        waited = await dispatch.waited_on()
    while waited:
        states = await jobs.job_states(waited)
        succeeded = [i for i in waited if states.get(i) is JobState.SUCCEEDED]
        ended_badly = {i: states.get(i) for i in waited if i not in states or states[i] in BAD_ENDS}
        if succeeded:
            await dispatch.stop_waiting(succeeded)
            released = True
        if not ended_badly:
            return released
        for job in await dispatch.jobs_waiting_on(list(ended_badly)):
            culprit = next(i for i in job.waiting_on if i in ended_badly)
            state = ended_badly[culprit]
            why = "was deleted" if state is None else f"ended {state.value}"
            failed = await dispatch.fail_queued(job.id, reason=f"dependency {culprit} {why}; this job did not run")
            if failed is not None:
                await events.record_events([state_event(failed)])
                if broker is not None:
                    await announce_end(broker, failed)
                log.info("job_dependency_failed", job_id=job.id, dependency=culprit)
        # Loop: the jobs failed now may be waited on in turn.
        waited = await dispatch.waited_on()
    return released
