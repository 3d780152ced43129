"""The scheduler's dispatch passes against a real Mongo and RabbitMQ: what may start, in which order, and how many."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path
from typing import Any

from services.gateway.scheduling.dependencies import settle_dependencies
from services.gateway.scheduling.dispatcher import HEADS, MAX_AHEAD, Dispatcher
from services.gateway.scheduling.scheduler import Scheduler
from services.gateway.scheduling.sweeps import sweep_lost_messages
from shared.broker import Broker
from shared.call_counts import tally
from shared.models import Batch, JobState, Queue, User, WorkerInfo, new_id, utcnow
from shared.settings import SchedulerSettings, Settings
from shared.storage import ObjectStorage
from shared.store import Stores
from shared.store.dispatch import DispatchView
from shared.tasks import RUNNER_SERVICE
from tests.helpers.records import in_store, make_job
from tests.helpers.stacks import delete_queues


def undispatched(**overrides: Any) -> Any:
    return make_job(owner=overrides.pop("owner", new_id()), dispatched=None, dispatch_lease=None, **overrides)


def runner(concurrency: int) -> WorkerInfo:
    now = utcnow()
    return WorkerInfo(
        id=new_id(),
        service=RUNNER_SERVICE,
        host="h",
        pid=1,
        concurrency=concurrency,
        busy=0,
        queues=[],
        started=now,
        heartbeat=now,
    )


def make_scheduler(stores: Stores, broker: Broker, settings: Settings, **overrides: Any) -> Scheduler:
    options: dict[str, Any] = {
        "dispatch_interval_seconds": 1,
        "dispatch_ahead": 0,
        "user_max_running": 0,
        "worker_heartbeat_seconds": 10,
        "max_attempts": 3,
    } | overrides
    configured = SchedulerSettings.model_validate(settings.model_dump() | options)
    return Scheduler.configured(configured, stores=stores, storage=ObjectStorage(settings), broker=broker)


def test_a_job_not_dispatched_is_not_claimed(settings: Settings) -> None:
    async def scenario(stores: Stores) -> Any:
        job = undispatched()
        await stores.jobs.insert_job(job)
        refused = await stores.jobs.claim_job(await stores.jobs.get_job(job.id), worker="w")
        assert await stores.dispatch.lease_dispatches([job.id], until=utcnow()) == [job.id]  # its message may be out
        return refused, await stores.jobs.claim_job(await stores.jobs.get_job(job.id), worker="w")

    refused, claimed = in_store(settings, scenario)
    assert refused is None and claimed.state is JobState.RUNNING


def test_only_one_of_concurrent_leases_wins(settings: Settings) -> None:
    async def scenario(stores: Stores) -> list[bool]:
        job = undispatched()
        await stores.jobs.insert_job(job)
        later = utcnow() + timedelta(days=1)
        leases = [stores.dispatch.lease_dispatches([job.id], until=later + timedelta(milliseconds=n)) for n in range(8)]
        return [bool(taken) for taken in await asyncio.gather(*leases)]

    assert sorted(in_store(settings, scenario)) == [False] * 7 + [True]


def test_heads_are_each_owners_by_priority_then_age_and_skip_what_may_not_start(settings: Settings) -> None:
    async def scenario(stores: Stores) -> dict[str, list[str]]:
        owner, other = new_id(), new_id()
        now = utcnow()
        storing = new_id()
        await stores.batches.insert_batch(Batch(id=storing, owner=owner, size=1, created=now), [])
        held = await stores.queues.ensure_queue(Queue(id=new_id(), owner=owner, name="held", created=now, updated=now))
        await stores.queues.set_queue_paused(held.id, owner=owner, paused=True)
        jobs = {
            "low": undispatched(owner=owner, priority=1),
            "high": undispatched(owner=owner, priority=9),
            "mid-old": undispatched(owner=owner, priority=5),
            "mid-new": undispatched(owner=owner, priority=5),
            "paused": undispatched(owner=owner, priority=9, queue="held"),
            "waiting": undispatched(owner=owner, priority=9, depends_on=["x"], waiting_on=["x"]),
            "storing": undispatched(owner=owner, priority=9, batch=storing),
            "sent": undispatched(owner=owner, priority=9).model_copy(update={"dispatched": now}),
            "other-held": undispatched(owner=other, priority=0, queue="held"),  # not paused: its queue is another's
            "other-beyond": undispatched(owner=other, priority=0),  # beyond the other's first two
            "other-high": undispatched(owner=other, priority=9),
        }
        for job in jobs.values():
            await stores.jobs.insert_job(job)
        names = {job.id: name for name, job in jobs.items()}
        found = await stores.dispatch.dispatch_heads(per_owner=2, storing=[storing])
        everything = await stores.dispatch.dispatch_heads(per_owner=100, storing=[storing])
        return {
            "two": [names[job.id] for job in found],
            "all": [names[job.id] for job in everything if job.owner == owner],
        }

    heads = in_store(settings, scenario)
    assert sorted(heads["two"]) == sorted(["high", "mid-old", "other-high", "other-held"])
    assert heads["all"] == ["high", "mid-old", "mid-new", "low"]


def test_a_user_with_a_crowd_of_urgent_jobs_does_not_hold_back_another_users_few(
    settings: Settings, tmp_path: Path
) -> None:
    """The fairness scenario, scaled down: 500 queued at priority 9, then 10 of another user's at priority 0.

    Each pass after a slot frees is a handful of Mongo commands, whatever the crowd: the view, each
    owner's heads (read after it, as the pass before found no slot free), the crowd's batch, the
    lease and the mark.
    """

    def commands() -> int:
        return sum(tally(tmp_path).snapshot().get("mongo", {}).values())

    async def scenario(stores: Stores) -> tuple[int, list[int], list[int]]:
        broker = Broker(alone)
        try:
            greedy, modest = new_id(), new_id()
            batch = new_id()
            crowd = [undispatched(owner=greedy, priority=9, batch=batch) for _ in range(500)]
            await stores.batches.insert_batch(Batch(id=batch, owner=greedy, size=len(crowd), created=utcnow()), crowd)
            await stores.batches.commit_batch(batch)
            await stores.workers.heartbeat(runner(concurrency=4))
            scheduler = make_scheduler(stores, broker, alone)
            first = await scheduler.pass_once()  # the crowd takes every slot
            few = [undispatched(owner=modest, priority=0) for _ in range(10)]
            for job in few:
                await stores.jobs.insert_job(job)
            started, costs = [], []
            for _ in range(3):  # a pass finds every slot taken; then one frees (a greedy job ends), and one pass
                running = await stores.dispatch.dispatch_view(alive_after=utcnow() - timedelta(minutes=1))
                assert sum(running.in_flight.values()) == 4
                assert await scheduler.pass_once() == 0  # the next reads the heads once it has a slot free
                sent = await stores.database.collection("jobs").find_one({"owner": greedy, "dispatched": {"$ne": None}})
                assert sent is not None
                await stores.jobs.delete_job(sent["_id"])
                before = commands()
                await scheduler.pass_once()
                costs.append(commands() - before)
                started.append(sum([(await stores.jobs.get_job(job.id)).dispatched is not None for job in few]))
            return first, started, costs
        finally:
            await asyncio.to_thread(broker.close)

    alone = settings.model_copy(
        update={
            "mongo_database": f"dispatch_{new_id()}",
            "queue_namespace": f"d{new_id()}",
            "quern_count_calls": tmp_path,
        }
    )
    try:
        first, started, costs = in_store(alone, scenario)
        # Each slot that frees goes to the modest user, who has fewer in flight, until both have two.
        assert (first, started) == (4, [1, 2, 2])
        # Five each, and one more in the pass that reads the database's clock (every 10 s: a slow machine's
        # three rounds may span one such read, not two).
        assert sum(costs) <= 3 * 5 + 1 and max(costs) <= 6, costs
    finally:
        delete_queues(alone.rabbitmq_url.get_secret_value(), alone.queue_namespace)


def test_dependencies_are_released_on_success_and_fail_their_dependents_otherwise(settings: Settings) -> None:
    async def scenario(stores: Stores) -> dict[str, Any]:
        owner = new_id()
        ok = undispatched(owner=owner, state=JobState.SUCCEEDED)
        bad = undispatched(owner=owner, state=JobState.CANCELED)
        after_ok = undispatched(owner=owner, depends_on=[ok.id], waiting_on=[ok.id])
        after_bad = undispatched(owner=owner, depends_on=[ok.id, bad.id], waiting_on=[ok.id, bad.id])
        after_after = undispatched(owner=owner, depends_on=[after_bad.id], waiting_on=[after_bad.id])
        after_gone = undispatched(owner=owner, depends_on=["gone"], waiting_on=["gone"])
        for job in (ok, bad, after_ok, after_bad, after_after, after_gone):
            await stores.jobs.insert_job(job)
        await settle_dependencies(dispatch=stores.dispatch, jobs=stores.jobs, events=stores.events)
        return {
            name: await stores.jobs.get_job(job.id)
            for name, job in {
                "after_ok": after_ok,
                "after_bad": after_bad,
                "after_after": after_after,
                "after_gone": after_gone,
            }.items()
        }

    jobs = in_store(settings, scenario)
    assert jobs["after_ok"].state is JobState.QUEUED and jobs["after_ok"].waiting_on == []
    assert jobs["after_bad"].state is JobState.FAILED and "ended CANCELED" in jobs["after_bad"].error.reason
    assert jobs["after_after"].state is JobState.FAILED and jobs["after_bad"].id in jobs["after_after"].error.reason
    assert jobs["after_gone"].error.reason == "dependency gone was deleted; this job did not run"


def test_only_as_many_jobs_as_free_slots_are_sent_and_a_user_limit_holds(settings: Settings) -> None:
    async def scenario(stores: Stores) -> list[int]:
        broker = Broker(alone)
        try:
            greedy, other = new_id(), new_id()
            for owner in (greedy, greedy, greedy, other):
                await stores.jobs.insert_job(undispatched(owner=owner))
            scheduler = make_scheduler(stores, broker, alone, user_max_running=2)
            sent = [await scheduler.pass_once()]  # no runner: nowhere to run
            await stores.workers.heartbeat(runner(concurrency=1))
            sent.append(await scheduler.pass_once())
            sent.append(await scheduler.pass_once())  # the one slot is taken by the message sent
            await stores.workers.heartbeat(runner(concurrency=10))
            sent.append(await scheduler.pass_once())  # greedy may have two in flight, other one
            return sent
        finally:
            await asyncio.to_thread(broker.close)

    # A database and queues of its own: this test counts every job in flight and every runner's slots,
    # and its messages must not reach the test stack's runner.
    alone = settings.model_copy(update={"mongo_database": f"dispatch_{new_id()}", "queue_namespace": f"d{new_id()}"})
    try:
        assert in_store(alone, scenario) == [0, 1, 0, 2]
    finally:
        delete_queues(alone.rabbitmq_url.get_secret_value(), alone.queue_namespace)


def test_a_hand_back_during_sending_is_not_overwritten(settings: Settings) -> None:
    async def scenario(stores: Stores) -> Any:
        job = undispatched()
        await stores.jobs.insert_job(job)
        lease = utcnow() + timedelta(minutes=1)
        await stores.dispatch.lease_dispatches([job.id], until=lease)
        await stores.dispatch.undispatch(job.id)  # the runner saw its queue paused before the dispatcher marked it sent
        await stores.dispatch.mark_dispatched([job.id], lease=lease)
        return await stores.jobs.get_job(job.id)

    job = in_store(settings, scenario)
    assert job.dispatched is None and job.dispatch_lease is None


def test_jobs_sent_long_ago_and_not_claimed_are_sent_again_whatever_waits_in_rabbitmq(settings: Settings) -> None:
    async def scenario(stores: Stores) -> Any:
        lost = undispatched().model_copy(update={"dispatched": utcnow() - timedelta(hours=1)})
        fresh = undispatched().model_copy(update={"dispatched": utcnow()})
        for job in (lost, fresh):
            await stores.jobs.insert_job(job)
        await sweep_lost_messages(dispatch=stores.dispatch)
        return await stores.jobs.get_job(lost.id), await stores.jobs.get_job(fresh.id)

    lost, fresh = in_store(settings, scenario)
    assert lost.dispatched is None and fresh.dispatched is not None


def test_the_jobs_whose_lease_lapsed_run_again_until_the_last_attempt_fails(settings: Settings, stack: Any) -> None:
    alone = settings.model_copy(update={"queue_namespace": f"d{new_id()}"})

    async def scenario(stores: Stores) -> Any:
        long_ago = utcnow() - timedelta(hours=1)
        running = {"state": JobState.RUNNING, "worker": "w-1", "started": long_ago, "lease": long_ago}
        first = undispatched(**running)
        last = undispatched(**running, attempt=3)
        renewed = undispatched(**running | {"lease": utcnow()})  # its runner renews its lease
        # Its worker heartbeats (restarted under the same name, say), but nobody renews this lease.
        alive = undispatched(**running | {"worker": "alive-1"})
        for job in (first, last, renewed, alive):
            await stores.jobs.insert_job(job)
        await stores.workers.heartbeat(runner(concurrency=1).model_copy(update={"id": "alive-1"}))
        broker = Broker(alone)
        try:
            await make_scheduler(stores, broker, alone).pass_once()
        finally:
            await asyncio.to_thread(broker.close)
        return [await stores.jobs.get_job(job.id) for job in (first, last, renewed, alive)]

    try:
        first, last, renewed, alive = in_store(alone, scenario)
    finally:
        delete_queues(alone.rabbitmq_url.get_secret_value(), alone.queue_namespace)
    assert first.state is JobState.QUEUED and first.attempt == 2 and first.worker is None and first.lease is None
    assert first.history[-1].by == "reaper" and first.history[-1].reason.startswith("the lease of worker w-1 lapsed")
    assert last.state is JobState.FAILED and "attempt 3 of 3; giving up" in last.error.reason
    assert renewed.state is JobState.RUNNING
    assert alive.state is JobState.QUEUED and alive.attempt == 2


def test_a_pass_leases_only_what_no_other_dispatcher_holds(settings: Settings) -> None:
    async def scenario(stores: Stores) -> tuple[list[str], list[str]]:
        jobs = [undispatched() for _ in range(5)]
        for job in jobs:
            await stores.jobs.insert_job(job)
        ids = [job.id for job in jobs]
        other = await stores.dispatch.lease_dispatches([ids[1]], until=utcnow() + timedelta(minutes=1))
        return other, await stores.dispatch.lease_dispatches(ids, until=utcnow() + timedelta(minutes=1, milliseconds=7))

    other, mine = in_store(settings, scenario)
    assert len(other) == 1 and sorted(mine) == sorted(set(mine)) and other[0] not in mine and len(mine) == 4


def look_ahead(ahead: int) -> Dispatcher:
    # The look-ahead is arithmetic on the dispatcher's own fields: no collaborator is called.
    return Dispatcher(
        dispatch=None,  # type: ignore[arg-type]
        batches=None,  # type: ignore[arg-type]
        broker=None,  # type: ignore[arg-type]
        ahead=ahead,
        user_max_running=0,
    )


def test_the_look_ahead_doubles_while_runners_run_dry_with_work_left_behind() -> None:
    dispatcher = look_ahead(2)
    seen = []
    for _ in range(12):
        dispatcher._backlog, dispatcher._left = True, dispatcher._ahead
        dispatcher._adapt(waiting=0)
        seen.append(dispatcher._ahead)
    assert seen[:4] == [4, 8, 16, 32] and seen[-1] == MAX_AHEAD


def test_the_look_ahead_stays_without_a_backlog_and_halves_back_while_messages_wait() -> None:
    dispatcher = look_ahead(2)
    dispatcher._adapt(waiting=0)  # runners idle, nothing left behind: no reason to send more
    assert dispatcher._ahead == 2
    dispatcher._ahead = 64
    seen = []
    for _ in range(6):
        dispatcher._adapt(waiting=dispatcher._ahead)  # a whole look-ahead still waits
        seen.append(dispatcher._ahead)
    assert seen == [32, 16, 8, 4, 2, 2]


def sent_by_one_pass(settings: Settings, *, extra: int) -> dict[str, bool]:
    """One pass over jobs that may not start (paused, batch being stored, waiting, over the user limit), beside
    ``extra`` more that may: which of the named jobs it sent. Over ``HEADS`` jobs, the heads are read on.
    """

    async def scenario(stores: Stores) -> dict[str, bool]:
        broker = Broker(alone)
        try:
            owner, limited, now = new_id(), new_id(), utcnow()
            storing = new_id()
            await stores.batches.insert_batch(Batch(id=storing, owner=owner, size=1, created=now), [])
            held = await stores.queues.ensure_queue(
                Queue(id=new_id(), owner=owner, name="held", created=now, updated=now)
            )
            await stores.queues.set_queue_paused(held.id, owner=owner, paused=True)
            jobs = {
                "first": undispatched(owner=owner, priority=9),
                "paused": undispatched(owner=owner, priority=9, queue="held"),
                "storing": undispatched(owner=owner, priority=9, batch=storing),
                "waiting": undispatched(owner=owner, priority=9, depends_on=["x"], waiting_on=["x"]),
                "limited-1": undispatched(owner=limited, priority=8),
                "limited-2": undispatched(owner=limited, priority=8),
            }
            for job in [*jobs.values(), *(undispatched(owner=owner, priority=1) for _ in range(extra))]:
                await stores.jobs.insert_job(job)
            user = User(id=limited, username=limited, password_hash="-", created=now, max_running=1)
            await stores.accounts.insert_user(user)
            await stores.workers.heartbeat(runner(concurrency=100))
            await make_scheduler(stores, broker, alone).pass_once()
            return {name: (await stores.jobs.get_job(job.id)).dispatched is not None for name, job in jobs.items()}
        finally:
            await asyncio.to_thread(broker.close)

    alone = settings.model_copy(update={"mongo_database": f"dispatch_{new_id()}", "queue_namespace": f"d{new_id()}"})
    try:
        return in_store(alone, scenario)
    finally:
        delete_queues(alone.rabbitmq_url.get_secret_value(), alone.queue_namespace)


def test_a_pass_over_a_few_jobs_sends_only_what_may_start(settings: Settings) -> None:
    sent = sent_by_one_pass(settings, extra=0)
    assert sent.pop("first") and sent.pop("limited-1") != sent.pop("limited-2")  # one of the two: its limit is 1
    assert sent == {"paused": False, "storing": False, "waiting": False}


def test_a_pass_over_a_crowd_sends_only_what_may_start(settings: Settings) -> None:
    sent = sent_by_one_pass(settings, extra=HEADS)
    assert sent.pop("first") and sent.pop("limited-1") != sent.pop("limited-2")
    assert sent == {"paused": False, "storing": False, "waiting": False}


def test_the_dispatch_view_reads_live_runners_jobs_in_flight_limits_dependencies_and_heads(
    settings: Settings,
) -> None:
    async def scenario(stores: Stores) -> DispatchView:
        one, two, three, now = new_id(), new_id(), new_id(), utcnow()
        live, dead, results = runner(concurrency=3), runner(concurrency=5), runner(concurrency=7)
        await stores.workers.heartbeat(dead)
        await asyncio.sleep(0.01)  # heartbeats are stamped by the database's clock, to the millisecond
        for worker in (live, results.model_copy(update={"service": "results"})):
            await stores.workers.heartbeat(worker)
        for job in (
            undispatched(owner=one, state=JobState.RUNNING, worker=live.id, started=now),
            undispatched(owner=one, state=JobState.RUNNING, worker=dead.id, started=now),
            undispatched(owner=one).model_copy(update={"dispatched": now}),
            undispatched(owner=two).model_copy(update={"dispatched": now}),
            undispatched(owner=two, priority=9),
            undispatched(owner=one, priority=5, queue="held"),  # read, but left out: its queue is paused
            undispatched(owner=three, priority=1),
            undispatched(owner=three, priority=0),  # beyond three's first one
            undispatched(owner=two, state=JobState.SUCCEEDED),
            undispatched(owner=two, depends_on=["a", "b"], waiting_on=["a", "b"]),
            undispatched(owner=three, depends_on=["b", "c"], waiting_on=["c"]),
            undispatched(owner=three, state=JobState.FAILED, depends_on=["d"], waiting_on=["d"]),
        ):
            await stores.jobs.insert_job(job)
        for user, limit in ((one, None), (three, 4)):
            await stores.accounts.insert_user(
                User(id=user, username=user, password_hash="-", created=now, max_running=limit)
            )
        for owner, name, paused in ((one, "held", True), (one, "open", False), (two, "held", False)):
            queue = await stores.queues.ensure_queue(
                Queue(id=new_id(), owner=owner, name=name, created=now, updated=now)
            )
            await stores.queues.set_queue_paused(queue.id, owner=owner, paused=paused)
        # The dead runner's heartbeat is older than the view's cut-off: it counts neither slots nor jobs.
        written = {w.id: w.heartbeat for w in await stores.workers.list_workers()}
        view = await stores.dispatch.dispatch_view(alive_after=written[dead.id], heads=1)
        names = {one: "one", two: "two", three: "three"}
        return DispatchView(
            view.capacity,
            {names[owner]: n for owner, n in view.in_flight.items()},
            {names[user]: n for user, n in view.limits.items()},
            view.waited,
            [job.model_copy(update={"owner": names[job.owner]}) for job in view.heads or []],
        )

    view = in_store(settings, scenario)
    assert sorted((job.owner, job.priority) for job in view.heads or []) == [("three", 1), ("two", 9)]
    assert view == DispatchView(3, {"one": 2, "two": 1}, {"three": 4}, ["a", "b", "c"], view.heads)


def test_a_batch_being_stored_does_not_crowd_out_the_jobs_behind_it(settings: Settings) -> None:
    async def scenario(stores: Stores) -> tuple[int, bool, bool]:
        broker = Broker(alone)
        try:
            owner, storing = new_id(), new_id()
            batch = [undispatched(owner=owner, priority=9, batch=storing) for _ in range(3 * HEADS)]
            await stores.batches.insert_batch(Batch(id=storing, owner=owner, size=len(batch), created=utcnow()), batch)
            behind = undispatched(owner=owner, priority=1)
            await stores.jobs.insert_job(behind)
            await stores.workers.heartbeat(runner(concurrency=1))
            sent = await make_scheduler(stores, broker, alone).pass_once()
            stored = any([(await stores.jobs.get_job(job.id)).dispatched for job in batch])
            return sent, (await stores.jobs.get_job(behind.id)).dispatched is not None, stored
        finally:
            await asyncio.to_thread(broker.close)

    alone = settings.model_copy(update={"mongo_database": f"dispatch_{new_id()}", "queue_namespace": f"d{new_id()}"})
    try:
        assert in_store(alone, scenario) == (1, True, False)
    finally:
        delete_queues(alone.rabbitmq_url.get_secret_value(), alone.queue_namespace)


def test_the_scheduler_touches_its_liveness_file_after_each_pass(settings: Settings, tmp_path: Path) -> None:
    alive = tmp_path / "alive"

    async def scenario(stores: Stores) -> list[float]:
        broker = Broker(settings)
        scheduler = make_scheduler(stores, broker, settings, liveness_file=alive, dispatch_interval_seconds=0.1)
        touched: list[float] = []
        scheduler.start()
        try:
            while len(touched) < 2:
                await asyncio.sleep(0.02)
                if alive.exists() and alive.stat().st_mtime not in touched:
                    touched.append(alive.stat().st_mtime)
        finally:
            await scheduler.stop()
            await asyncio.to_thread(broker.close)
        return touched

    first, second = in_store(settings, lambda stores: asyncio.wait_for(scenario(stores), 10))
    assert second > first
