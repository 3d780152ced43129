"""The dispatcher calls RabbitMQ in threads of its own, not in the default pool that uploads and datasets share."""

from __future__ import annotations

import asyncio
import threading

import anyio.to_thread

from services.gateway.scheduling.dispatcher import Dispatcher
from shared.broker import Broker
from shared.models import new_id, utcnow
from shared.settings import Settings
from shared.store import Stores
from tests.helpers.records import in_store
from tests.helpers.stacks import delete_queues


def dispatch_threads() -> set[threading.Thread]:
    return {thread for thread in threading.enumerate() if thread.name.startswith("quern-dispatch")}


def test_a_pass_calls_the_broker_in_the_dispatchers_threads_even_when_the_default_pool_is_full(
    settings: Settings,
) -> None:
    alone = settings.model_copy(update={"queue_namespace": f"d{new_id()}"})

    async def scenario(stores: Stores) -> tuple[set[threading.Thread], set[threading.Thread]]:
        # Another test's dispatcher in this process may still have threads of the same names: not these.
        others = dispatch_threads()
        broker = Broker(alone)
        dispatcher = Dispatcher(
            dispatch=stores.dispatch, batches=stores.batches, broker=broker, ahead=2, user_max_running=0
        )
        limiter = anyio.to_thread.current_default_thread_limiter()
        held = [object() for _ in range(int(limiter.total_tokens))]
        try:
            for holder in held:  # every thread of the default pool is taken, as by a burst of uploads
                await limiter.acquire_on_behalf_of(holder)
            await asyncio.wait_for(dispatcher.dispatch_once(alive_after=utcnow()), 30)
            during = dispatch_threads() - others
        finally:
            for holder in held:
                limiter.release_on_behalf_of(holder)
            dispatcher.close()
            await asyncio.to_thread(broker.close)
        for _ in range(100):
            if not dispatch_threads() & during:
                break
            await asyncio.sleep(0.05)
        return during, dispatch_threads() & during

    try:
        during, after = in_store(alone, scenario)
    finally:
        delete_queues(alone.rabbitmq_url.get_secret_value(), alone.queue_namespace)
    assert during and after == set()
