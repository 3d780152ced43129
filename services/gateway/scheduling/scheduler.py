"""The scheduler: dispatch passes on a timer and whenever woken, plus the periodic sweeps, in the background.

Each pass sends what may start (``dispatcher``), settles dependencies (``dependencies``) and,
every ``JOB_LEASE_SECONDS / REAP_SHARE``, recovers the jobs whose lease lapsed (``reaper``).
Passes come every ``DISPATCH_INTERVAL_SECONDS``, at once when woken (a job was submitted, a
queue resumed), while a backlog waits as soon as RabbitMQ runs low, never closer than
``MIN_GAP_SECONDS``, and after a slow pass no sooner than it took. The database's clock, which
judges heartbeats and leases, is read every ``CLOCK_SECONDS``. Abandoned batches and lost
messages are swept before a pass every ``SWEEP_SECONDS``; expired uploads and the objects of
abandoned dataset creations every ``UPLOAD_SWEEP_SECONDS``, beside the passes. After each pass,
failed or not, it touches ``LIVENESS_FILE`` (if set), for a scheduler process's livenessProbe.

It runs inside every gateway (unless ``RUN_SCHEDULER=false``) or as its own process
(``python -m services.gateway.scheduling``). Several at once are safe: dispatch leases each job
with a compare-and-set, recovery and the sweeps change a job only if it is still as they read it.
"""

from __future__ import annotations

import asyncio
import time
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import structlog

from services.gateway.scheduling.dependencies import settle_dependencies
from services.gateway.scheduling.dispatcher import Dispatcher
from services.gateway.scheduling.reaper import reap
from services.gateway.scheduling.sweeps import (
    sweep_abandoned_batches,
    sweep_abandoned_datasets,
    sweep_expired_uploads,
    sweep_lost_messages,
)
from shared.broker import Broker
from shared.errors import AppError
from shared.liveness import touch
from shared.models import MISSED_BEATS
from shared.settings import SchedulerSettings
from shared.storage import ObjectStorage
from shared.store import Stores

log = structlog.get_logger()
SWEEP_SECONDS = 60  # abandoned batches and lost messages are looked for this often
UPLOAD_SWEEP_SECONDS = 600  # expired presigned uploads (and abandoned dataset drafts) are discarded this often
MIN_GAP_SECONDS = 0.05  # between passes, however often submissions wake the scheduler
DEPTH_POLL_SECONDS = 0.05  # how often RabbitMQ's depth is read while a backlog waits
REAP_SHARE = 10  # orphans are looked for every JOB_LEASE_SECONDS / REAP_SHARE (at least every interval)
CLOCK_SECONDS = 10.0  # the database's clock is read this often; in between, it is counted on from the last reading


@dataclass
class Scheduler:
    """Runs the dispatch passes and the sweeps until stopped; ``wake()`` asks for a pass now."""

    stores: Stores
    storage: ObjectStorage
    broker: Broker
    dispatcher: Dispatcher
    interval: float
    heartbeat_seconds: float
    lease_seconds: float
    max_attempts: int
    liveness_file: Path | None = None  # touched after every pass (LIVENESS_FILE: a scheduler process's probe)
    _wake: asyncio.Event = field(default_factory=asyncio.Event)
    _last_sweep: float = 0.0
    _last_reap: float | None = None  # when a pass last looked for orphans (time.monotonic)
    _clock: tuple[float, datetime] | None = None  # (time.monotonic, the database's time) at the last reading
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    @classmethod
    def configured(
        cls, settings: SchedulerSettings, *, stores: Stores, storage: ObjectStorage, broker: Broker
    ) -> Scheduler:
        """A scheduler over these clients, timed and bounded as the settings say."""
        dispatcher = Dispatcher(
            dispatch=stores.dispatch,
            batches=stores.batches,
            broker=broker,
            ahead=settings.dispatch_ahead,
            user_max_running=settings.user_max_running,
        )
        return cls(
            stores=stores,
            storage=storage,
            broker=broker,
            dispatcher=dispatcher,
            interval=settings.dispatch_interval_seconds,
            heartbeat_seconds=settings.worker_heartbeat_seconds,
            lease_seconds=settings.job_lease_seconds,
            max_attempts=settings.max_attempts,
            liveness_file=settings.liveness_file,
        )

    def wake(self) -> None:
        """Look for startable jobs now rather than at the next tick."""
        self._wake.set()

    def start(self) -> None:
        """Sweep and dispatch in the background of the running event loop."""
        self._tasks = [
            asyncio.create_task(self._sweep_uploads_forever()),
            asyncio.create_task(self._dispatch_forever()),
        ]

    async def stop(self) -> None:
        """Cancel the background work and wait until it ended."""
        for task in self._tasks:
            task.cancel()
            with suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        self.dispatcher.close()

    async def pass_once(self) -> int:
        """One pass: send what may start, settle dependencies, and now and then recover orphaned jobs.

        Sending comes first, as it is what a submission waits for. Jobs that stop waiting on a
        dependency wake the scheduler for another pass; recovered jobs go at the next. A lease
        lapses after ``JOB_LEASE_SECONDS``, so orphans are looked for every tenth of that (or every
        interval, if longer) rather than at every pass a submission wakes.
        Returns how many jobs were sent.
        """
        stores = self.stores
        now = await self._database_now()  # heartbeats and leases are judged by the database's clock
        alive_after = now - timedelta(seconds=MISSED_BEATS * self.heartbeat_seconds)
        sent, waited = await self.dispatcher.dispatch_once(alive_after=alive_after)
        if await settle_dependencies(
            dispatch=stores.dispatch, jobs=stores.jobs, events=stores.events, broker=self.broker, waited=waited
        ):
            self.wake()
        steady = time.monotonic()
        if self._last_reap is not None and steady - self._last_reap < max(
            self.interval, self.lease_seconds / REAP_SHARE
        ):
            return sent
        self._last_reap = steady
        await reap(
            dispatch=stores.dispatch,
            jobs=stores.jobs,
            events=stores.events,
            storage=self.storage,
            broker=self.broker,
            lease_seconds=self.lease_seconds,
            max_attempts=self.max_attempts,
            now=now,
        )
        return sent

    async def _database_now(self) -> datetime:
        """The database's time: read every ``CLOCK_SECONDS``, counted on by this process's steady clock in between."""
        steady = time.monotonic()
        if self._clock is None or steady - self._clock[0] >= CLOCK_SECONDS:
            self._clock = (steady, await self.stores.database.server_time())
        return self._clock[1] + timedelta(seconds=steady - self._clock[0])

    async def _dispatch_forever(self) -> None:
        """Pass until cancelled; a backend outage is logged and retried at the next tick."""
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            try:
                if started - self._last_sweep > SWEEP_SECONDS:
                    await sweep_abandoned_batches(batches=self.stores.batches)
                    await sweep_lost_messages(dispatch=self.stores.dispatch)
                    self._last_sweep = started
                await self.pass_once()
            except AppError as exc:
                log.warning("dispatch_failed", detail=exc.detail)
            except Exception:  # a bug must not end dispatching for this process: log it and go on
                log.exception("dispatch_crashed")
            touch(self.liveness_file)
            # A slow pass (a database under load) is not repeated at once: rest at least as long as it took.
            took = loop.time() - started
            try:
                await asyncio.wait_for(self._rest(), max(self.interval, took))
            except TimeoutError:
                pass
            self._wake.clear()
            await asyncio.sleep(max(0.0, MIN_GAP_SECONDS - (loop.time() - started)))

    async def _rest(self) -> None:
        """Return when woken, or (while a backlog waits) once RabbitMQ holds less than a quarter of the look-ahead."""
        if not self.dispatcher.backlog:
            await self._wake.wait()
            return
        while not self._wake.is_set():
            try:
                if await self.dispatcher.running_low():
                    return
            except AppError:
                pass  # RabbitMQ's trouble shows in the next pass; until then, rest the whole interval
            try:
                await asyncio.wait_for(self._wake.wait(), DEPTH_POLL_SECONDS)
            except TimeoutError:
                pass

    async def _sweep_uploads_forever(self) -> None:
        """Sweep expired uploads and abandoned dataset drafts now and then, for as long as the scheduler runs."""
        while True:
            await sweep_expired_uploads(files=self.stores.files, storage=self.storage)
            await sweep_abandoned_datasets(datasets=self.stores.datasets, storage=self.storage)
            await asyncio.sleep(UPLOAD_SWEEP_SECONDS)
