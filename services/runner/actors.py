"""The runner's actors, registered on the worker's broker with deliberate limits and retries."""

from __future__ import annotations

from typing import cast

import dramatiq
import structlog

from services.runner.drivers import offered
from services.runner.runs import ActiveRuns, execute_job
from services.runner.specs import AppVersions
from shared.broker import Broker
from shared.errors import Invalid, NotFound
from shared.settings import RunnerSettings
from shared.tasks import RUN_JOB
from shared.worker import Drain, Resources

# A job enforces its own wall-clock limit (at most the app's timeout.max, itself at most 7 days);
# the actor's limit only catches a runner that hangs outside the app.
ACTOR_TIME_LIMIT_MS = 8 * 24 * 3600 * 1000


def register(broker: Broker, resources: Resources) -> Drain:
    """Declare ``run_job`` on ``broker``; returns the drain that stops running apps at shutdown.

    Retries cover a backend that does not answer before the claim: up to 20, backing off to
    5 minutes, which is safe because the claim is idempotent. Once claimed, the outcome is
    recorded in Mongo and a retry only finds the job taken. Unknown jobs are permanent
    failures. Shutdown is handled by the drain rather than by interrupting the actor.
    """
    settings = cast(RunnerSettings, resources.settings)
    specs = AppVersions()
    active = ActiveRuns(settings.runner_id)
    drivers = offered(settings)

    async def run_job(job_id: str) -> None:
        with structlog.contextvars.bound_contextvars(job_id=job_id):
            stores = resources.stores
            await execute_job(
                job_id,
                jobs=stores.jobs,
                events=stores.events,
                queues=stores.queues,
                dispatch=stores.dispatch,
                webhooks=stores.webhooks,
                apps=stores.apps,
                files=stores.files,
                datasets=stores.datasets,
                storage=resources.storage,
                broker=resources.broker,
                specs=specs,
                settings=settings,
                active=active,
                drivers=drivers,
            )

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
    return active.stop_all
