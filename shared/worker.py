"""A Dramatiq worker process, as the runner and results services run it.

Actors are ``async def`` and run on the one event-loop thread of Dramatiq's ``AsyncIO``
middleware; that is where the ``AsyncMongoClient`` is opened (it is bound to one loop), at
worker boot. Blocking work (boto3, tar, subprocess waits) leaves the loop via
``asyncio.to_thread``. The worker runs in this process rather than under the ``dramatiq``
CLI so that settings are read once in ``__main__`` and passed down, and no client is created
at import time.

Prefetch equals the thread count: a worker never holds messages it cannot start, so a long
job does not sit on work another worker could take.
"""

from __future__ import annotations

import asyncio
import signal
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import dramatiq
import structlog
from dramatiq.asyncio import get_event_loop_thread
from dramatiq.middleware import Middleware
from dramatiq.middleware.asyncio import AsyncIO

from shared.broker import Broker
from shared.logging import MessageContext
from shared.mongo import MongoStore
from shared.settings import Settings
from shared.storage import ObjectStorage

log = structlog.get_logger()
Drain = Callable[[], Awaitable[None]]
"""Stops a service's work in progress cleanly; run on the event loop before the worker stops."""


@dataclass
class Resources:
    """The clients actors use; ``store`` exists once the worker has booted."""

    settings: Settings
    broker: Broker
    storage: ObjectStorage
    appname: str
    _store: MongoStore | None = field(default=None)

    @property
    def store(self) -> MongoStore:
        """The Mongo store, bound to the worker's event loop."""
        if self._store is None:
            raise RuntimeError("the worker has not booted: no Mongo client yet")
        return self._store


class OpenClients(Middleware):
    """Open the Mongo client on the event-loop thread when the worker boots; close it at shutdown."""

    def __init__(self, resources: Resources) -> None:
        self.resources = resources

    def after_worker_boot(self, broker: Any, worker: Any) -> None:
        async def open_store() -> MongoStore:
            return MongoStore.connect(self.resources.settings, appname=self.resources.appname)

        self.resources._store = _loop().run_coroutine(open_store())

    def after_worker_shutdown(self, broker: Any, worker: Any) -> None:
        # Runs before AsyncIO's own after_worker_shutdown (Dramatiq calls these in reverse), so the loop is alive.
        if self.resources._store is not None:
            _loop().run_coroutine(self.resources._store.close())


def _loop() -> Any:
    thread = get_event_loop_thread()
    if thread is None:
        raise RuntimeError("the AsyncIO middleware has not started its event loop")
    return thread


def serve(
    settings: Settings,
    *,
    appname: str,
    threads: int,
    register: Callable[[Broker, Resources], Drain | None],
    grace_seconds: int = 30,
) -> None:
    """Run a worker until SIGTERM or SIGINT; then drain the service's work and stop."""
    broker = Broker(settings, middleware=[AsyncIO(), MessageContext()])
    resources = Resources(settings=settings, broker=broker, storage=ObjectStorage(settings), appname=appname)
    broker.dramatiq.add_middleware(OpenClients(resources))
    drain = register(broker, resources)

    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())

    # Only the queues of our own actors: publishing to another service's queue declares it on
    # this broker too, and an unrestricted worker would start consuming (and dead-lettering) it.
    queues = set(broker.dramatiq.get_declared_queues())
    broker.dramatiq.emit_after("process_boot")
    worker = dramatiq.Worker(broker.dramatiq, queues=queues, worker_threads=threads, worker_timeout=1000)
    worker.queue_prefetch = threads
    worker.start()
    log.info("worker_started", appname=appname, threads=threads, queues=sorted(queues))
    stop.wait()
    log.info("worker_stopping", grace_seconds=grace_seconds)
    if drain is not None:
        try:
            _loop().run_coroutine(asyncio.wait_for(drain(), grace_seconds))
        except TimeoutError:
            log.warning("worker_drain_timed_out", grace_seconds=grace_seconds)
    worker.stop(timeout=grace_seconds * 1000)
    broker.close()
    resources.storage.close()
    log.info("worker_stopped", appname=appname)
