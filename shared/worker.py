"""A Dramatiq worker process, as the runner and results services run it.

Actors are ``async def`` and run on the one event-loop thread of Dramatiq's ``AsyncIO``
middleware; that is where the ``AsyncMongoClient`` is opened (it is bound to one loop), at
worker boot. Blocking work (boto3, tar, subprocess waits) leaves the loop via
``asyncio.to_thread``. The worker runs in this process rather than under the ``dramatiq``
CLI so that settings are read once in ``__main__`` and passed down, and no client is created
at import time.

A service may also run one ``background`` coroutine (the results service's retention sweep)
on that loop, beside the heartbeat, from boot until shutdown.

At every heartbeat the worker also touches ``LIVENESS_FILE`` (if set), whatever Mongo answered:
an exec livenessProbe that finds it stale knows the event loop is stuck, not that a backend is
down (restarting a worker would not bring Mongo back, and would cut its runs short). Its
metrics (``shared/metrics.py``) are served on ``METRICS_PORT`` (if set).

Prefetch equals the thread count unless the service asks for less: a worker never holds
messages it cannot start, so a long job does not sit on work another worker could take. A
service may also stop consuming one queue while it is full (``Intake``): the runner does, as it
acknowledges a job's message at the claim and runs the job beyond the message.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import dramatiq
import structlog
from dramatiq.asyncio import get_event_loop_thread
from dramatiq.middleware import Middleware
from dramatiq.middleware.asyncio import AsyncIO

from shared.broker import Broker
from shared.errors import AppError
from shared.liveness import touch
from shared.logging import MessageContext
from shared.metrics import BUSY, HEARTBEAT, SLOTS, MessageMetrics, MetricsListener
from shared.models import WorkerInfo, utcnow
from shared.settings import Settings
from shared.storage import ObjectStorage
from shared.store import Stores
from shared.store.workers import WorkerStore

log = structlog.get_logger()
Drain = Callable[[], Awaitable[None]]
"""Stops a service's work in progress cleanly; run on the event loop before the worker stops."""
Background = Callable[["Resources"], Coroutine[Any, Any, None]]
"""A service's periodic task (a sweep), run on the event loop from boot until shutdown."""


class Intake(Middleware):
    """Pauses and resumes consuming one queue, so a worker takes messages only while it can start them.

    Pausing makes Dramatiq's consumer close its connection at its next idle moment (a message
    already delivered is still handed over); resuming consumes again. A pause asked for while a
    message of the queue is being processed waits until that message is done and its ack queued:
    the consumer's connection must not close under an ack not yet sent, or RabbitMQ would deliver
    the message again. Either may be asked before the worker has started: it applies once it has.
    """

    def __init__(self) -> None:
        self.queue: str | None = None
        self._worker: dramatiq.Worker | None = None
        self._paused = False
        self._processing = 0
        self._lock = threading.Lock()

    def attach(self, worker: dramatiq.Worker) -> None:
        """Control the consumer of ``queue`` in this (started) worker."""
        self._worker = worker
        self._apply()

    def pause(self) -> None:
        """Stop consuming the queue (once no message of it is being processed)."""
        self._paused = True
        self._apply()

    def resume(self) -> None:
        """Consume the queue again."""
        self._paused = False
        self._apply()

    def before_process_message(self, broker: Any, message: Any) -> None:
        with self._lock:
            self._processing += 1

    def after_ack(self, broker: Any, message: Any) -> None:
        # The ack is queued on the consumer's connection now; closing it sends what is queued first.
        with self._lock:
            self._processing -= 1
        self._apply()

    after_nack = after_ack

    def _apply(self) -> None:
        consumer = None if self._worker is None or self.queue is None else self._worker.consumers.get(self.queue)
        if consumer is None or consumer.paused == self._paused:
            return
        if not self._paused:
            consumer.resume()
        elif self._processing == 0:
            consumer.pause()


@dataclass
class Resources:
    """The clients actors use; ``stores`` exist once the worker has booted."""

    settings: Settings
    broker: Broker
    storage: ObjectStorage
    appname: str
    worker_id: str
    _stores: Stores | None = field(default=None)
    intake: Intake = field(default_factory=Intake)
    load: Callable[[], int] | None = None  # the service's own count of work in hand, for the heartbeat
    on_boot: Callable[[Stores], None] | None = None  # called on the event loop once the stores are open

    @property
    def stores(self) -> Stores:
        """The Mongo stores, bound to the worker's event loop."""
        if self._stores is None:
            raise RuntimeError("the worker has not booted: no Mongo client yet")
        return self._stores

    def in_hand(self, busy: Busy) -> int:
        """The work in hand: the service's own count if it keeps one, else the messages being processed."""
        return busy.count if self.load is None else self.load()


class Busy(Middleware):
    """Counts the messages being processed, for the worker's heartbeat."""

    def __init__(self) -> None:
        self.count = 0
        self._lock = threading.Lock()

    def before_process_message(self, broker: Any, message: Any) -> None:
        with self._lock:
            self.count += 1

    def after_process_message(
        self, broker: Any, message: Any, *, result: Any = None, exception: BaseException | None = None
    ) -> None:
        with self._lock:
            self.count -= 1

    after_skip_message = after_process_message


class OpenClients(Middleware):
    """Open the Mongo client on the event-loop thread at boot and heartbeat from there; close both at shutdown."""

    def __init__(
        self, resources: Resources, presence: WorkerInfo, busy: Busy, background: Background | None = None
    ) -> None:
        self.resources = resources
        self.presence = presence
        self.busy = busy
        self.background = background
        self._beating: asyncio.Task[None] | None = None
        self._sweeping: asyncio.Task[None] | None = None

    def after_worker_boot(self, broker: Any, worker: Any) -> None:
        async def open_stores() -> None:
            self.resources._stores = Stores.connect(self.resources.settings, appname=self.resources.appname)
            if self.resources.on_boot is not None:
                self.resources.on_boot(self.resources._stores)
            self._beating = asyncio.create_task(self._heartbeat(self.resources._stores.workers))
            if self.background is not None:
                self._sweeping = asyncio.create_task(self.background(self.resources))

        _loop().run_coroutine(open_stores())

    async def _heartbeat(self, workers: WorkerStore) -> None:
        while True:
            try:
                busy = self.resources.in_hand(self.busy)
                await workers.heartbeat(self.presence.model_copy(update={"busy": busy, "heartbeat": utcnow()}))
            except AppError as exc:
                log.warning("heartbeat_failed", detail=exc.detail)
            touch(self.resources.settings.liveness_file)
            HEARTBEAT.labels(self.presence.service).set(time.time())
            await asyncio.sleep(self.resources.settings.worker_heartbeat_seconds)

    def after_worker_shutdown(self, broker: Any, worker: Any) -> None:
        # Runs before AsyncIO's own after_worker_shutdown (Dramatiq calls these in reverse), so the loop is alive.
        async def close() -> None:
            for task in (self._beating, self._sweeping):
                if task is not None:
                    task.cancel()
            if self.resources._stores is not None:
                try:
                    await self.resources._stores.workers.remove_worker(self.presence.id)
                except AppError as exc:
                    log.warning("worker_unregister_failed", detail=exc.detail)
                await self.resources._stores.close()

        _loop().run_coroutine(close())


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
    worker_id: str | None = None,
    register: Callable[[Broker, Resources], Drain | None],
    grace_seconds: float = 30,
    prefetch: int | None = None,
    background: Background | None = None,
) -> None:
    """Run a worker until SIGTERM or SIGINT; then drain the service's work (at most ``grace_seconds``) and stop."""
    broker = Broker(settings, middleware=[AsyncIO(), MessageContext(), MessageMetrics(appname)])
    resources = Resources(
        settings=settings,
        broker=broker,
        storage=ObjectStorage(settings),
        appname=appname,
        worker_id=worker_id or f"{socket.gethostname()}-{os.getpid()}",
    )
    drain = register(broker, resources)
    busy = Busy()
    queues = set(broker.dramatiq.get_declared_queues())
    presence = WorkerInfo(
        id=resources.worker_id,
        service=appname,
        host=socket.gethostname(),
        pid=os.getpid(),
        concurrency=threads,
        busy=0,
        queues=sorted(queues),
        started=utcnow(),
        heartbeat=utcnow(),
    )
    broker.dramatiq.add_middleware(busy)
    SLOTS.labels(appname).set(threads)
    BUSY.labels(appname).set_function(lambda: resources.in_hand(busy))
    metrics = MetricsListener(settings)
    broker.dramatiq.add_middleware(resources.intake)
    broker.dramatiq.add_middleware(OpenClients(resources, presence, busy, background))

    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())

    # Only the queues of our own actors: publishing to another service's queue declares it on
    # this broker too, and an unrestricted worker would start consuming (and dead-lettering) it.
    broker.dramatiq.emit_after("process_boot")
    worker = dramatiq.Worker(broker.dramatiq, queues=queues, worker_threads=threads, worker_timeout=1000)
    worker.queue_prefetch = prefetch or threads
    worker.start()
    resources.intake.attach(worker)
    log.info("worker_started", appname=appname, threads=threads, queues=sorted(queues))
    stop.wait()
    log.info("worker_stopping", grace_seconds=grace_seconds)
    if drain is not None:
        try:
            _loop().run_coroutine(asyncio.wait_for(drain(), grace_seconds))
        except TimeoutError:
            log.warning("worker_drain_timed_out", grace_seconds=grace_seconds)
    worker.stop(timeout=int(grace_seconds * 1000))
    broker.close()
    resources.storage.close()
    metrics.close()
    log.info("worker_stopped", appname=appname)
