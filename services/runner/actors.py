"""The runner's actors, registered on the worker's broker with deliberate limits and retries."""

from __future__ import annotations

from typing import cast

import dramatiq
import structlog

from services.runner.runs import execute_job
from shared.apps import load_apps
from shared.broker import Broker
from shared.errors import Invalid, NotFound
from shared.settings import RunnerSettings
from shared.tasks import RUN_JOB
from shared.worker import Resources

# A job enforces its own wall-clock limit (at most the app's timeout.max, itself at most 7 days);
# the actor's limit only catches a runner that hangs outside the app.
ACTOR_TIME_LIMIT_MS = 8 * 24 * 3600 * 1000


def register(broker: Broker, resources: Resources) -> None:
    """Declare ``run_job`` on ``broker``.

    Retries cover a backend that did not answer before the claim (three, with backoff); once
    claimed, the job's outcome is recorded in Mongo and a retry only finds it taken. Unknown
    jobs are permanent failures.
    """
    settings = cast(RunnerSettings, resources.settings)
    apps = load_apps(settings.apps_dir)

    async def run_job(job_id: str) -> None:
        with structlog.contextvars.bound_contextvars(job_id=job_id):
            await execute_job(
                job_id,
                store=resources.store,
                storage=resources.storage,
                broker=resources.broker,
                apps=apps,
                settings=settings,
            )

    dramatiq.actor(
        broker=broker.dramatiq,
        actor_name=RUN_JOB.actor,
        queue_name=broker.queue(RUN_JOB),
        max_retries=3,
        min_backoff=1000,
        max_backoff=30000,
        time_limit=ACTOR_TIME_LIMIT_MS,
        notify_shutdown=True,
        throws=(NotFound, Invalid),
    )(run_job)
