"""The dispatcher: Mongo holds every QUEUED job; a job's message goes to RabbitMQ only once it may start.

A job may start when its batch (if any) is fully stored, its queue is not paused, every
job it depends on succeeded, and its owner is under ``USER_MAX_RUNNING``. Jobs go highest
priority first, then oldest, and only as many as the live runners have free slots plus a
look-ahead waiting in RabbitMQ, so priorities decide what starts next.

The look-ahead is ``DISPATCH_AHEAD`` while jobs take longer than a pass (the usual case). When
runners empty RabbitMQ faster than passes refill it (many short jobs), it doubles, up to
``MAX_AHEAD``, and the scheduler watches the queue's depth to pass again as it runs low; once
messages wait longer than a pass it halves back. A job of higher priority waits behind at most
the look-ahead, which is large only while jobs go through in fractions of a second.

Several schedulers may dispatch at once: a job is leased with a compare-and-set (one update for
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

from shared.broker import Broker
from shared.models import Job, WorkerInfo, utcnow
from shared.store.batches import BatchStore
from shared.store.dispatch import DispatchStore, DispatchView
from shared.tasks import RUN_JOB, RUNNER_SERVICE

log = structlog.get_logger()
LEASE_SECONDS = 60
MAX_AHEAD = 1000
GLIMPSE = 20  # startable jobs a pass looks for first: fewer are all there are, and need no second read


@dataclass
class Dispatcher:
    """Sends startable jobs to RabbitMQ, as many as the live runners' free slots plus the look-ahead."""

    dispatch: DispatchStore
    batches: BatchStore
    broker: Broker
    ahead: int
    user_max_running: int
    _ahead: int = field(init=False)  # the look-ahead now: ``ahead`` until runners outpace the passes
    _left: int = 0  # run_job messages the last pass left waiting in RabbitMQ
    _backlog: bool = False  # the last pass left startable jobs behind: the budget ran out
    _crowded: bool = False  # the last look found ``GLIMPSE`` startable jobs or more: skip the glimpse

    def __post_init__(self) -> None:
        self._ahead = self.ahead

    @property
    def backlog(self) -> bool:
        """Whether the last pass left startable jobs behind because the budget ran out."""
        return self._backlog

    async def running_low(self) -> bool:
        """Whether RabbitMQ holds no more than a quarter of the look-ahead, so another pass should refill it."""
        return await run_in_threadpool(self.broker.waiting, RUN_JOB) <= self._ahead // 4

    def _adapt(self, waiting: int) -> None:
        """Grow the look-ahead if runners ran dry with work left behind; shrink it while messages wait a whole pass."""
        if self._backlog and waiting == 0 and self._left > 0:
            self._ahead = min(MAX_AHEAD, max(2 * self._ahead, 4))
        elif waiting > self._ahead // 2:
            self._ahead = max(self.ahead, self._ahead // 2)

    async def dispatch_once(self, live: list[WorkerInfo]) -> int:
        """One pass: lease and send what may start, given the live workers; how many jobs were sent.

        The jobs in flight, the user limits and the paused queues come in one read. Unless the last
        pass met a crowd, a pass then glimpses at the first ``GLIMPSE`` startable jobs (paused
        queues passed over): none, and the pass is over; fewer, and they are all there are, so
        the limits and (only if one of them is a batch's) the batches being stored are applied to
        them here. A crowd is read filtered by the query, as many as the budget allows, until it thins out.
        """
        capacity = sum(w.concurrency for w in live if w.service == RUNNER_SERVICE)
        # RUNNING jobs of dead workers hold no slot: they wait for recovery, not for capacity.
        waiting, view = await asyncio.gather(
            run_in_threadpool(self.broker.waiting, RUN_JOB), self._view(live, needed=capacity > 0)
        )
        self._adapt(waiting)
        self._backlog, self._left = False, waiting
        if view is None:
            return 0
        in_flight, limits = view.in_flight, view.limits
        budget = capacity + self._ahead - sum(in_flight.values())
        if budget <= 0:
            return 0
        glimpse: list[Job] | None = None
        if not self._crowded:
            glimpse = await self.dispatch.dispatch_candidates(
                limit=GLIMPSE, skip_owners=[], paused=view.paused, storing=[]
            )
            if not glimpse:
                return 0
            self._crowded = len(glimpse) == GLIMPSE
        # A job's batch record is written before the job, so batches read after the glimpse cover its jobs.
        storing = await self._storing(needed=glimpse is None or self._crowded or any(job.batch for job in glimpse))

        def full(owner: str) -> bool:
            limit = limits.get(owner, self.user_max_running or None)
            return limit is not None and in_flight.get(owner, 0) >= limit

        if self._crowded or glimpse is None:
            candidates = await self.dispatch.dispatch_candidates(
                limit=budget * 4 + 20,
                skip_owners=[owner for owner in in_flight | limits if full(owner)],
                paused=view.paused,
                storing=storing,
            )
            self._crowded = len(candidates) >= GLIMPSE
        else:
            candidates = [job for job in glimpse if job.batch not in set(storing)]
        chosen: list[Job] = []
        for job in candidates:
            if len(chosen) >= budget:
                self._backlog = True
                break
            if not full(job.owner):
                chosen.append(job)
                in_flight[job.owner] = in_flight.get(job.owner, 0) + 1
        # Milliseconds at random make this pass's lease its own: two schedulers leasing in the same
        # millisecond would both send the job, and the runner's claim would drop the second message.
        lease = utcnow() + timedelta(seconds=LEASE_SECONDS, milliseconds=random.randrange(1000))
        taken = set(await self.dispatch.lease_dispatches([job.id for job in chosen], until=lease))
        leased = [job for job in chosen if job.id in taken]  # the rest went to another dispatcher
        sent = await self._send(leased, lease)
        self._left += sent
        return sent

    async def _view(self, live: list[WorkerInfo], *, needed: bool) -> DispatchView | None:
        """Jobs in flight, user limits and paused queues, if ``needed`` (not while no runner has a slot)."""
        return await self.dispatch.dispatch_view(live_workers=[w.id for w in live]) if needed else None

    async def _storing(self, *, needed: bool) -> list[str]:
        """The batches being stored, if ``needed``: only when a job of a batch may be among the candidates."""
        return await self.batches.uncommitted_batches() if needed else []

    async def _send(self, leased: list[Job], lease: datetime) -> int:
        """Publish the leased jobs' messages; those RabbitMQ did not take are given back to the next pass."""
        if not leased:
            return 0
        message_ids = await run_in_threadpool(self.broker.send_all, RUN_JOB, [job.id for job in leased])
        for job in leased:
            if job.id not in message_ids:
                await self.dispatch.undispatch(job.id)
        await self.dispatch.mark_dispatched(list(message_ids), lease=lease)
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
