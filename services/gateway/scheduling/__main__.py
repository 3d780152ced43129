"""The scheduler as its own process (``python -m services.gateway.scheduling``), for gateways with RUN_SCHEDULER=false.

It needs Mongo, S3 and RabbitMQ and the dispatch settings, not AUTH_SECRET: it serves no HTTP but its metrics
(``METRICS_PORT``, if set).
It stops on SIGTERM or SIGINT; a pass cut short leaves at most a lease, which expires, and the job
is sent again (the runner's claim drops a second message).
"""

from __future__ import annotations

import asyncio
import signal

import structlog
from starlette.concurrency import run_in_threadpool

from services.gateway.scheduling.scheduler import Scheduler
from shared.broker import Broker
from shared.errors import AppError
from shared.logging import configure_logging
from shared.metrics import MetricsListener
from shared.settings import SchedulerSettings, load
from shared.storage import ObjectStorage
from shared.store import Stores
from shared.store.migrations import migrate

log = structlog.get_logger()


async def prepare(stores: Stores) -> None:
    """Create the indexes dispatch relies on and run the data migrations; the rest of setup is the gateway's."""
    await stores.dispatch.ensure_indexes()
    await stores.batches.ensure_indexes()
    await migrate(stores.database)


async def serve(settings: SchedulerSettings) -> None:
    """Schedule until SIGTERM or SIGINT, then close the clients."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    stores = Stores.connect(settings, appname="quern-scheduler")
    storage = ObjectStorage(settings)
    broker = Broker(settings)
    scheduler = Scheduler.configured(settings, stores=stores, storage=storage, broker=broker)
    metrics = MetricsListener(settings)
    try:
        try:
            await prepare(stores)
        except AppError as exc:
            # Start anyway: each pass retries its backends, and every gateway's setup creates the same indexes.
            log.warning("backend_not_ready_at_start", detail=exc.detail)
        scheduler.start()
        log.info("scheduler_started", interval=settings.dispatch_interval_seconds, ahead=settings.dispatch_ahead)
        await stop.wait()
        await scheduler.stop()
    finally:
        await run_in_threadpool(broker.close)
        await run_in_threadpool(storage.close)
        await run_in_threadpool(metrics.close)
        await stores.close()
        log.info("scheduler_stopped")


def main() -> None:
    """Read settings, set up logging, then schedule until told to stop."""
    settings = load(SchedulerSettings)
    configure_logging(settings)
    asyncio.run(serve(settings))


if __name__ == "__main__":
    main()
