"""Announcing a job's end to its webhooks when no packager will (it never ran, or had ended already)."""

from __future__ import annotations

import structlog
from starlette.concurrency import run_in_threadpool

from shared.broker import Broker
from shared.errors import Unavailable
from shared.models import Job
from shared.tasks import ANNOUNCE_END

log = structlog.get_logger()


async def announce_end(broker: Broker, job: Job) -> None:
    """Have the results service announce the end of a job no packager will see (it never ran, or had ended already).

    Best effort: with RabbitMQ down, the end stands and its webhook event is lost (and logged).
    """
    try:
        await run_in_threadpool(broker.send, ANNOUNCE_END, job.id)
    except Unavailable as exc:
        log.warning("webhook_announce_lost", job_id=job.id, state=job.state.value, detail=exc.detail)
