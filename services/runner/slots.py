"""The runs a runner holds: one slot each, their stop events, the watch for cancels, the leases, the drain.

A ``run_job`` message is acknowledged right after the claim; the run goes on as a task on the
worker's event loop, holding a slot. A message that finds every slot taken waits a moment for
one, then hands its job back to the dispatcher and stops the consuming (``Intake``) until a slot
is free: the runner never holds a message it cannot start, and RabbitMQ's ``consumer_timeout``
never applies to a run.

While runs are held, one loop looks for cancel requests every second and renews the leases of
exactly the held runs, by the database's clock, three times per lease. A runner that could not
renew for two thirds of a lease stops its apps: it may be the one cut off, and the reaper will
run those jobs again elsewhere once the lease lapses.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Coroutine
from typing import Any

import structlog

from shared.errors import AppError, Unavailable
from shared.store.jobs import JobStore
from shared.worker import Intake

log = structlog.get_logger()
WATCH_SECONDS = 1.0
SLOT_WAIT_SECONDS = 2.0

# Why a run was asked to stop; the first reason given is the one that counts.
CANCELED = "canceled"  # on request, or the job is no longer this run's (recovered, forced)
SHUTDOWN = "shutdown"  # the runner drains: the job is handed back to the queue
LEASE_LOST = "lease"  # the lease could not be renewed: the reaper will recover the job


class Slots:
    """The runs this runner holds: a bounded number, each a task with a stop event and a renewed lease."""

    def __init__(self, worker: str, *, capacity: int, jobs: JobStore | None, intake: Intake, lease_seconds: float):
        self.worker = worker
        self.capacity = capacity
        self.intake = intake
        self.lease_seconds = lease_seconds
        self._jobs = jobs
        self._reserved = 0
        self._freed = asyncio.Condition()
        self._stops: dict[str, asyncio.Event] = {}
        self._reasons: dict[str, str] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._watching: asyncio.Task[None] | None = None
        self.closed = False

    @property
    def used(self) -> int:
        """Slots reserved or running (the worker's load, for its heartbeat)."""
        return self._reserved

    def bind(self, jobs: JobStore) -> None:
        """Give the slots the job store, once the worker's event loop has opened it."""
        self._jobs = jobs

    async def reserve(self) -> bool:
        """Take a slot, waiting briefly for one; False when none is free (or the runner drains).

        A message that finds every slot busy for ``SLOT_WAIT_SECONDS`` stops the consuming until a
        slot is free again. Pausing only then, rather than whenever the slots fill, spares a runner
        of short jobs from closing and reopening its consumer at every job.
        """
        async with self._freed:
            try:
                await asyncio.wait_for(
                    self._freed.wait_for(lambda: self.closed or self._reserved < self.capacity), SLOT_WAIT_SECONDS
                )
            except TimeoutError:
                self.intake.pause()
                return False
            if self.closed:
                return False
            self._reserved += 1
            return True

    async def release(self) -> None:
        """Give a slot back, and consume again if the runner had stopped for want of one."""
        async with self._freed:
            self._reserved -= 1
            if not self.closed and self._reserved < self.capacity:
                self.intake.resume()
            self._freed.notify_all()

    def launch(self, job_id: str, run: Coroutine[Any, Any, None]) -> None:
        """Run a claimed job in the background on a reserved slot (the run finds its stop event by ``stop_event``)."""
        self._stops[job_id] = asyncio.Event()
        self._tasks[job_id] = asyncio.create_task(self._hold(job_id, run))
        if self._watching is None or self._watching.done():
            self._watching = asyncio.create_task(self._watch())

    async def _hold(self, job_id: str, run: Coroutine[Any, Any, None]) -> None:
        try:
            await run
        except Exception:
            # The lease is no longer renewed, so the reaper recovers the job: nothing stays RUNNING for ever.
            log.exception("job_run_crashed", job_id=job_id)
        finally:
            self._stops.pop(job_id, None)
            self._reasons.pop(job_id, None)
            self._tasks.pop(job_id, None)
            await self.release()

    def stop_event(self, job_id: str) -> asyncio.Event:
        """The stop event of a held run."""
        return self._stops[job_id]

    def stop(self, job_id: str, reason: str) -> None:
        """Ask one run's app to stop; the first reason given is the one recorded."""
        if job_id in self._stops:
            self._reasons.setdefault(job_id, reason)
            self._stops[job_id].set()

    def reason(self, job_id: str) -> str | None:
        """Why the run was asked to stop (``canceled``, ``shutdown`` or ``lease``), if it was."""
        return self._reasons.get(job_id)

    async def drain(self, *, drain_seconds: float) -> None:
        """Take no more runs; let the held ones go on for ``drain_seconds``, then stop them to be handed back."""
        async with self._freed:
            self.closed = True
            self.intake.pause()
            self._freed.notify_all()
        held = list(self._tasks.values())
        if held:
            log.info("runner_draining", runs=len(held), drain_seconds=drain_seconds)
            await asyncio.wait(held, timeout=drain_seconds)
        for job_id in list(self._stops):
            self.stop(job_id, SHUTDOWN)
        if remaining := list(self._tasks.values()):
            await asyncio.wait(remaining)

    async def _watch(self) -> None:
        """While runs are held: cancel requests every second, lease renewals three times per lease."""
        renewed = last_try = time.monotonic()
        while self._stops:
            now = time.monotonic()
            if now - last_try >= self.lease_seconds / 3:
                last_try = now
                if await self._renew():
                    renewed = now
                elif now - renewed > self.lease_seconds * 2 / 3:
                    log.error("job_leases_lost", runs=sorted(self._stops), unrenewed_seconds=round(now - renewed))
                    for job_id in list(self._stops):
                        self.stop(job_id, LEASE_LOST)
            await self._poll_cancels()
            await asyncio.sleep(WATCH_SECONDS)

    async def _renew(self) -> bool:
        assert self._jobs is not None
        try:
            await self._jobs.renew_leases(list(self._stops), worker=self.worker)
        except Unavailable as exc:
            log.warning("lease_renewal_failed", detail=exc.detail)
            return False
        return True

    async def _poll_cancels(self) -> None:
        """Stop the runs asked to stop, and those no longer this runner's (recovered meanwhile, or forced)."""
        assert self._jobs is not None
        try:
            for job_id in await self._jobs.cancel_requests(list(self._stops), worker=self.worker):
                log.info("job_cancel_requested", job_id=job_id)
                self.stop(job_id, CANCELED)
        except AppError as exc:
            log.warning("cancel_poll_failed", detail=exc.detail)
