"""Queues against the test Mongo: the default queue ensured once per process, and made again once deleted."""

from __future__ import annotations

from shared.models import DEFAULT_QUEUE, Queue, new_id, utcnow
from shared.settings import Settings
from shared.store import Stores
from shared.store.queues import QueueStore
from tests.helpers.records import in_store


def a_queue(owner: str) -> Queue:
    now = utcnow()
    return Queue(id=new_id(), owner=owner, name=DEFAULT_QUEUE, created=now, updated=now)


def test_a_queue_ensured_by_two_processes_is_one_queue(settings: Settings) -> None:
    owner = new_id()

    async def scenario(stores: Stores) -> list[str]:
        other = QueueStore(stores.database)  # another gateway's store over the same database
        for store in (stores.queues, other, stores.queues, other):
            await store.ensure_queue_exists(a_queue(owner))
        page = await stores.queues.list_queues(owner=owner, limit=10, after=None)
        return [queue.name for queue in page.items]

    assert in_store(settings, scenario) == [DEFAULT_QUEUE]


def test_a_queue_deleted_by_this_process_is_made_again_when_next_ensured(settings: Settings) -> None:
    owner = new_id()

    async def scenario(stores: Stores) -> tuple[bool, bool]:
        await stores.queues.ensure_queue_exists(a_queue(owner))
        held = await stores.queues.find_queue(owner=owner, name=DEFAULT_QUEUE)
        assert held is not None
        await stores.queues.delete_queue(held.id)
        gone = await stores.queues.find_queue(owner=owner, name=DEFAULT_QUEUE) is None
        await stores.queues.ensure_queue_exists(a_queue(owner))
        return gone, await stores.queues.find_queue(owner=owner, name=DEFAULT_QUEUE) is not None

    assert in_store(settings, scenario) == (True, True)
