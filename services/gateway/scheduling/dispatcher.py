"""The dispatcher: Mongo holds every QUEUED job; a job's message goes to RabbitMQ only once it may start.

A job may start when its batch (if any) is fully stored, its queue is not paused, every
job it depends on succeeded, and its owner is under ``USER_MAX_RUNNING``. Owners take turns,
the next slot to whoever has the fewest jobs in flight (``shares.py``); each owner's jobs go
highest priority first, then oldest; and only as many as the live runners have free slots plus
a look-ahead waiting in RabbitMQ, so a user's priorities decide which of theirs starts next.

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

RabbitMQ's client (pika) blocks, so the dispatcher calls it in two threads of its own
(``quern-dispatch``), not in the default pool that upload hashing and dataset work share: a
pass never waits behind them, and they never wait behind a broker that is slow to answer.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import ParamSpec, TypeVar

import structlog
from prometheus_client import Counter, Histogram

from services.gateway.scheduling.shares import fair_share
from shared.broker import Broker
from shared.models import Job, utcnow
from shared.store.batches import BatchStore
from shared.store.dispatch import DispatchStore, DispatchView
from shared.tasks import RUN_JOB

log = structlog.get_logger()
LEASE_SECONDS = 60
MAX_AHEAD = 1000
HEADS = 20  # startable jobs a pass reads per owner, at least (more while an owner's run out before the slots)
BROKER_THREADS = 2  # a pass makes one broker call at a time; the second serves running_low beside it
P = ParamSpec("P")
T = TypeVar("T")
DISPATCHED = Counter("quern_jobs_dispatched", "Jobs whose run_job message went to RabbitMQ")
DISPATCH_LATENCY = Histogram(
    "quern_dispatch_latency_seconds",
    "From a job's submission (or its last return to QUEUED) to its message being sent",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 4 * 3600, 24 * 3600),
)


def _broker_threads() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=BROKER_THREADS, thread_name_prefix="quern-dispatch")


def queued_since(job: Job) -> datetime:
    """When the job last became QUEUED: its submission, or the last change its history records (a retry, a recovery)."""
    return job.history[-1].at if job.history else job.created


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
    _full: bool = False  # the last pass found no slot free
    _crowd: bool = False  # the last heads read held ``HEADS`` jobs or more: with no slot free, not worth reading
    _per_owner: int = HEADS  # heads read per owner
    _storing_seen: set[str] = field(default_factory=set)  # batches last found being stored: kept out of the heads
    _broker_calls: ThreadPoolExecutor = field(default_factory=_broker_threads)  # threads start when first used

    def __post_init__(self) -> None:
        self._ahead = self.ahead

    async def _broker(self, call: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """A blocking broker call, in the dispatcher's own threads."""
        return await asyncio.wrap_future(self._broker_calls.submit(call, *args, **kwargs))

    def close(self) -> None:
        """Let the broker threads go once their calls end."""
        self._broker_calls.shutdown(wait=False, cancel_futures=True)

    @property
    def backlog(self) -> bool:
        """Whether the last pass left startable jobs behind because the budget ran out."""
        return self._backlog

    async def running_low(self) -> bool:
        """Whether RabbitMQ holds no more than a quarter of the look-ahead, so another pass should refill it."""
        return await self._broker(self.broker.waiting, RUN_JOB) <= self._ahead // 4

    def _adapt(self, waiting: int) -> None:
        """Grow the look-ahead if runners ran dry with work left behind; shrink it while messages wait a whole pass."""
        if self._backlog and waiting == 0 and self._left > 0:
            self._ahead = min(MAX_AHEAD, max(2 * self._ahead, 4))
        elif waiting > self._ahead // 2:
            self._ahead = max(self.ahead, self._ahead // 2)

    async def dispatch_once(self, *, alive_after: datetime) -> tuple[int, list[str]]:
        """One pass: lease and send what may start; how many jobs were sent, and what QUEUED jobs wait on.

        The live runners (heartbeat after ``alive_after``, the database's time), the jobs in flight,
        the user limits and the dependencies come in one read (``dispatch_view``), beside RabbitMQ's
        depth, and with them each owner's first startable jobs (its heads), unless the last pass
        found no slot free and a crowd of heads: then the heads are read after the view, and only if
        a slot is free now (a crowd costs the store a read that a full pass would throw away; a few
        heads cost less than a second command).
        The batches of the heads are looked up after them, and only if there are any (see ``_storing``).
        """
        waiting, view = await asyncio.gather(
            self._broker(self.broker.waiting, RUN_JOB),
            self.dispatch.dispatch_view(
                alive_after=alive_after,
                heads=0 if self._full and self._crowd else self._per_owner,
                storing=sorted(self._storing_seen),
            ),
        )
        self._adapt(waiting)
        self._backlog, self._left = False, waiting
        sent = await self._dispatch(view)
        self._left += sent
        return sent, view.waited

    async def _dispatch(self, view: DispatchView) -> int:
        """Lease and send what may start by this view, owners taking turns (``fair_share``); how many were sent."""
        budget = view.capacity + self._ahead - sum(view.in_flight.values())
        self._full = budget <= 0
        if not view.capacity or budget <= 0:  # no runner (nowhere to run), or no slot free
            return 0
        heads, storing = await self._heads(view.heads, budget)
        startable = [job for job in heads if job.batch not in storing]

        def limit_of(owner: str) -> int | None:
            return view.limits.get(owner, self.user_max_running or None)

        chosen = fair_share(startable, in_flight=view.in_flight, limit_of=limit_of, budget=budget)
        self._adapt_heads(startable, chosen, budget)
        # Milliseconds at random make this pass's lease its own: two schedulers leasing in the same
        # millisecond would both send the job, and the runner's claim would drop the second message.
        lease = utcnow() + timedelta(seconds=LEASE_SECONDS, milliseconds=random.randrange(1000))
        taken = set(await self.dispatch.lease_dispatches([job.id for job in chosen], until=lease))
        leased = [job for job in chosen if job.id in taken]  # the rest went to another dispatcher
        return await self._send(leased, lease)

    async def _heads(self, read: list[Job] | None, budget: int) -> tuple[list[Job], set[str]]:
        """The owners' heads (``read`` with the view, else read now) and which of their batches are being stored.

        Read now, they are no more per owner than the budget: no owner can take more this pass.
        A batch found being stored that the query did not keep out yet (thousands of its jobs may
        fill its owner's heads) is kept out of a second read, and of the queries after.
        """
        per_owner = min(self._per_owner, budget)
        hinted = sorted(self._storing_seen)
        heads = read if read is not None else await self.dispatch.dispatch_heads(per_owner=per_owner, storing=hinted)
        storing = await self._storing(heads, hinted=hinted)
        if not storing <= set(hinted):
            hinted = sorted(self._storing_seen)
            heads = await self.dispatch.dispatch_heads(per_owner=per_owner, storing=hinted)
            storing = await self._storing(heads, hinted=hinted)
        self._crowd = len(heads) >= HEADS
        return heads, storing

    def _adapt_heads(self, startable: list[Job], chosen: list[Job], budget: int) -> None:
        """Note a backlog, and read more heads per owner next time if an owner's ran out before the budget did.

        An owner all of whose heads were chosen may have more jobs that could have gone: the next
        pass reads twice as many per owner (up to ``MAX_AHEAD``) and comes as soon as RabbitMQ runs
        low; while no owner's heads run out, the number halves back to ``HEADS``.
        """
        per_owner: dict[str, int] = {}
        for job in startable:
            per_owner[job.owner] = per_owner.get(job.owner, 0) + 1
        taken: dict[str, int] = {}
        for job in chosen:
            taken[job.owner] = taken.get(job.owner, 0) + 1
        ran_out = any(n >= self._per_owner and taken.get(owner) == n for owner, n in per_owner.items())
        if len(chosen) >= budget and len(chosen) < len(startable):
            self._backlog = True
        if ran_out and len(chosen) < budget:
            self._backlog = True
            self._per_owner = min(MAX_AHEAD, 2 * self._per_owner)
        elif not ran_out:
            self._per_owner = max(HEADS, self._per_owner // 2)

    async def _storing(self, candidates: list[Job], *, hinted: list[str]) -> set[str]:
        """Which of the candidates' batches (and of ``hinted``, kept out of the query) are still being stored.

        A job's batch record is written before the job, so a read after the candidates covers their
        batches; none of them in a batch, nothing is read. The batches found still being stored are
        kept out of the next queries, so a batch of thousands being stored does not fill its owner's heads.
        """
        among = sorted({job.batch for job in candidates if job.batch} | set(hinted))
        storing = set(await self.batches.uncommitted_batches(among=among)) if among else set()
        self._storing_seen = storing | (self._storing_seen - set(among))
        return storing

    async def _send(self, leased: list[Job], lease: datetime) -> int:
        """Publish the leased jobs' messages; those RabbitMQ did not take are given back to the next pass."""
        if not leased:
            return 0
        message_ids = await self._broker(self.broker.send_all, RUN_JOB, [job.id for job in leased])
        for job in leased:
            if job.id not in message_ids:
                await self.dispatch.undispatch(job.id)
        await self.dispatch.mark_dispatched(list(message_ids), lease=lease)
        sent = utcnow()
        for job in leased:
            if job.id in message_ids:
                DISPATCHED.inc()
                DISPATCH_LATENCY.observe(max(0.0, (sent - queued_since(job)).total_seconds()))
                log.info(
                    "job_dispatched",
                    job_id=job.id,
                    priority=job.priority,
                    queue=job.queue,
                    message_id=message_ids[job.id],
                )
        return len(message_ids)
