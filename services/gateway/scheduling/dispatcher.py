"""The dispatcher: Mongo holds every QUEUED job; a job's message goes to RabbitMQ only once it may start.

A job may start when its batch (if any) is fully stored, its queue is not paused, every
job it depends on succeeded, and its owner is under ``USER_MAX_RUNNING``. Jobs go highest
priority first, then oldest, and only as many as the live runners have free slots plus a
look-ahead waiting in RabbitMQ, so priorities decide what starts next.

The look-ahead is ``DISPATCH_AHEAD`` while jobs take longer than a pass (the usual case). When
runners empty RabbitMQ faster than passes refill it (many short jobs), it doubles, up to
``MAX_AHEAD``, and the dispatcher watches the queue's depth to pass again as it runs low; once
messages wait longer than a pass it halves back. A job of higher priority waits behind at most
the look-ahead, which is large only while jobs go through in fractions of a second.

Several gateways may dispatch at once: a job is leased with a compare-and-set (one update for
the whole pass) before its message is sent, and marked dispatched after, so no two dispatchers
send it. A dispatcher that dies between the two leaves a lease that expires, and the job is
sent again; the runner's claim is a compare-and-set too, so a second message never runs the
job twice. A job accepted while RabbitMQ is down simply stays undispatched (the outbox is the
jobs collection) until RabbitMQ is back.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import structlog
from starlette.concurrency import run_in_threadpool

from services.gateway.domain.requeues import recover
from services.gateway.scheduling.dependencies import settle_dependencies
from shared.broker import Broker
from shared.errors import AppError
from shared.models import MISSED_BEATS, Job, WorkerInfo, utcnow
from shared.storage import ObjectStorage
from shared.store import Stores
from shared.tasks import RUN_JOB, RUNNER_SERVICE

log = structlog.get_logger()
LEASE_SECONDS = 60
ABANDONED_BATCH_SECONDS = 600
SWEEP_SECONDS = 60  # abandoned batches and lost messages are looked for this often
STALE_DISPATCH_SECONDS = 300
MIN_GAP_SECONDS = 0.05  # between passes, however often submissions wake the dispatcher
MAX_AHEAD = 1000
DEPTH_POLL_SECONDS = 0.05  # how often RabbitMQ's depth is read while a backlog waits


@dataclass
class Dispatcher:
    """Sends startable jobs to RabbitMQ, on a timer and whenever woken (a job was submitted)."""

    stores: Stores
    storage: ObjectStorage
    broker: Broker
    interval: float
    ahead: int
    user_max_running: int
    heartbeat_seconds: float
    max_attempts: int
    _wake: asyncio.Event = field(default_factory=asyncio.Event)
    _last_sweep: float = 0.0
    _ahead: int = field(init=False)  # the look-ahead now: ``ahead`` until runners outpace the passes
    _left: int = 0  # run_job messages the last pass left waiting in RabbitMQ
    _backlog: bool = False  # the last pass left startable jobs behind: the budget ran out

    def __post_init__(self) -> None:
        self._ahead = self.ahead

    def wake(self) -> None:
        """Look for startable jobs now rather than at the next tick."""
        self._wake.set()

    async def run_forever(self) -> None:
        """Dispatch until cancelled; a backend outage is logged and retried at the next tick."""
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            try:
                if started - self._last_sweep > SWEEP_SECONDS:
                    await self.sweep_abandoned_batches()
                    await self.sweep_lost_messages()
                    self._last_sweep = started
                await self.dispatch_once()
            except AppError as exc:
                log.warning("dispatch_failed", detail=exc.detail)
            except Exception:  # a bug must not end dispatching for this gateway: log it and go on
                log.exception("dispatch_crashed")
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
        if not self._backlog:
            await self._wake.wait()
            return
        while not self._wake.is_set():
            try:
                if await run_in_threadpool(self.broker.waiting, RUN_JOB) <= self._ahead // 4:
                    return
            except AppError:
                pass  # RabbitMQ's trouble shows in the next pass; until then, rest the whole interval
            try:
                await asyncio.wait_for(self._wake.wait(), DEPTH_POLL_SECONDS)
            except TimeoutError:
                pass

    def _adapt(self, waiting: int) -> None:
        """Grow the look-ahead if runners ran dry with work left behind; shrink it while messages wait a whole pass."""
        if self._backlog and waiting == 0 and self._left > 0:
            self._ahead = min(MAX_AHEAD, max(2 * self._ahead, 4))
        elif waiting > self._ahead // 2:
            self._ahead = max(self.ahead, self._ahead // 2)

    async def sweep_abandoned_batches(self) -> None:
        """Delete batches whose gateway died while storing them: they were never acknowledged to anyone."""
        before = utcnow() - timedelta(seconds=ABANDONED_BATCH_SECONDS)
        for batch_id in await self.stores.batches.uncommitted_batches(created_before=before):
            await self.stores.batches.delete_batch(batch_id)
            log.warning("batch_abandoned", batch=batch_id)

    async def sweep_lost_messages(self) -> None:
        """Send again the jobs whose message went missing (dead-lettered after its retries, or purged).

        Only while no ``run_job`` message waits in RabbitMQ: then a job sent minutes ago and still
        not claimed has no message left. Should one turn up after all, the claim drops the duplicate.
        """
        depth = await run_in_threadpool(self.broker.queue_stats, [RUN_JOB])
        if any(stats["messages"] for stats in depth.values()):
            return
        before = utcnow() - timedelta(seconds=STALE_DISPATCH_SECONDS)
        if taken_back := await self.stores.dispatch.undispatch_stale(dispatched_before=before):
            log.warning("lost_messages_resent", jobs=taken_back)

    async def reap(self, live: list[str]) -> None:
        """Recover the RUNNING jobs of workers that stopped heartbeating: run again, or FAILED after the last attempt.

        A job claimed within the last three heartbeats is left alone: its worker may not have
        reported yet. The app of a dead runner died with it (the kernel kills it), and a runner
        that was only cut off stops the app once it sees the job is no longer its own.
        """
        started_before = utcnow() - timedelta(seconds=MISSED_BEATS * self.heartbeat_seconds)
        for job in await self.stores.dispatch.orphaned_jobs(live_workers=live, started_before=started_before):
            outcome = await recover(
                jobs=self.stores.jobs,
                events=self.stores.events,
                dispatch=self.stores.dispatch,
                storage=self.storage,
                broker=self.broker,
                job=job,
                by="reaper",
                max_attempts=self.max_attempts,
            )
            if outcome is not None:
                log.warning(
                    "job_reaped", job_id=job.id, worker=job.worker, state=outcome.state.value, attempt=outcome.attempt
                )

    async def dispatch_once(self) -> int:
        """One pass: send what may start, then settle dependencies and recover the jobs of dead workers.

        Sending comes first, as it is what a submission waits for. Jobs that stop waiting on a
        dependency wake the dispatcher for another pass; recovered jobs go at the next.
        Returns how many jobs were sent.
        """
        live = [w for w in await self.stores.workers.list_workers() if w.alive(self.heartbeat_seconds)]
        sent = await self._dispatch(live)
        stores = self.stores
        if await settle_dependencies(
            dispatch=stores.dispatch, jobs=stores.jobs, events=stores.events, broker=self.broker
        ):
            self.wake()
        await self.reap([w.id for w in live])
        return sent

    async def _dispatch(self, live: list[WorkerInfo]) -> int:
        # RUNNING jobs of dead workers hold no slot: they wait for recovery, not for capacity.
        in_flight, waiting, limits, paused, storing = await asyncio.gather(
            self.stores.dispatch.in_flight(live_workers=[w.id for w in live]),
            run_in_threadpool(self.broker.waiting, RUN_JOB),
            self.stores.accounts.user_limits(),
            self.stores.queues.paused_queues(),
            self.stores.batches.uncommitted_batches(),
        )
        capacity = sum(w.concurrency for w in live if w.service == RUNNER_SERVICE)
        self._adapt(waiting)
        budget = 0 if capacity == 0 else capacity + self._ahead - sum(in_flight.values())
        self._backlog, self._left = False, waiting
        if budget <= 0:
            return 0

        def full(owner: str) -> bool:
            limit = limits.get(owner, self.user_max_running or None)
            return limit is not None and in_flight.get(owner, 0) >= limit

        candidates = await self.stores.dispatch.dispatch_candidates(
            limit=budget * 4 + 20,
            skip_owners=[owner for owner in in_flight | limits if full(owner)],
            paused=paused,
            storing=storing,
        )
        chosen: list[Job] = []
        for job in candidates:
            if len(chosen) >= budget:
                self._backlog = True
                break
            if not full(job.owner):
                chosen.append(job)
                in_flight[job.owner] = in_flight.get(job.owner, 0) + 1
        # Milliseconds at random make this pass's lease its own: two gateways leasing in the same
        # millisecond would both send the job, and the runner's claim would drop the second message.
        lease = utcnow() + timedelta(seconds=LEASE_SECONDS, milliseconds=random.randrange(1000))
        taken = set(await self.stores.dispatch.lease_dispatches([job.id for job in chosen], until=lease))
        leased = [job for job in chosen if job.id in taken]  # the rest went to another dispatcher
        sent = await self._send(leased, lease)
        self._left += sent
        return sent

    async def _send(self, leased: list[Job], lease: datetime) -> int:
        """Publish the leased jobs' messages; those RabbitMQ did not take are given back to the next pass."""
        if not leased:
            return 0
        message_ids = await run_in_threadpool(self.broker.send_all, RUN_JOB, [job.id for job in leased])
        for job in leased:
            if job.id not in message_ids:
                await self.stores.dispatch.undispatch(job.id)
        await self.stores.dispatch.mark_dispatched(list(message_ids), lease=lease)
        for job in leased:
            if job.id in message_ids:
                log.info(
                    "job_dispatched",
                    job_id=job.id,
                    priority=job.priority,
                    queue=job.queue,
                    message_id=message_ids[job.id],
                )
        return len(message_ids)
