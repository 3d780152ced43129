"""The runner's actors, registered on the worker's broker with deliberate limits and retries."""

from __future__ import annotations

from typing import cast

import dramatiq
import structlog

from services.runner.drivers import offered
from services.runner.pauses import PausedQueues
from services.runner.runs import RunnerKit, take_job
from services.runner.slots import Slots
from services.runner.specs import AppVersions
from shared.broker import Broker
from shared.errors import Invalid, NotFound
from shared.settings import RunnerSettings
from shared.tasks import RUN_JOB
from shared.worker import Drain, Resources

# The actor only takes a slot and claims the job; the run goes on beyond it, on the event loop.
ACTOR_TIME_LIMIT_MS = 5 * 60 * 1000


def register(broker: Broker, resources: Resources) -> Drain:
    """Declare ``run_job`` on ``broker``; returns the drain that hands running jobs back at shutdown.

    Retries cover a backend that does not answer before the claim: up to 20, backing off to
    5 minutes, which is safe because the claim is idempotent. Once claimed, the message is done
    and the run's outcome is recorded in Mongo; a duplicate only finds the job taken. Unknown
    jobs are permanent failures.
    """
    settings = cast(RunnerSettings, resources.settings)
    resources.intake.queue = broker.queue(RUN_JOB)
    slots = Slots(
        resources.worker_id,
        capacity=settings.runner_concurrency,
        jobs=None,
        intake=resources.intake,
        lease_seconds=settings.job_lease_seconds,
    )
    resources.load = lambda: slots.used
    resources.on_boot = lambda stores: slots.bind(stores.jobs)
    specs = AppVersions()
    paused = PausedQueues()
    drivers = offered(settings)

    async def run_job(job_id: str) -> None:
        kit = RunnerKit(
            stores=resources.stores,
            storage=resources.storage,
            broker=resources.broker,
            specs=specs,
            settings=settings,
            slots=slots,
            drivers=drivers,
            paused=paused,
        )
        with structlog.contextvars.bound_contextvars(job_id=job_id):
            await take_job(job_id, kit=kit)

    dramatiq.actor(
        broker=broker.dramatiq,
        actor_name=RUN_JOB.actor,
        queue_name=broker.queue(RUN_JOB),
        max_retries=20,
        min_backoff=1000,
        max_backoff=300_000,
        time_limit=ACTOR_TIME_LIMIT_MS,
        throws=(NotFound, Invalid),
    )(run_job)

    async def drain() -> None:
        await slots.drain(drain_seconds=settings.drain_seconds)

    return drain
