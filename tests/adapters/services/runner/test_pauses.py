"""The runner's view of the paused queues against the test Mongo: one read for all, seen within a refresh."""

from __future__ import annotations

import asyncio

from services.runner.pauses import PausedQueues
from shared.models import Queue, new_id, utcnow
from shared.settings import Settings
from shared.store import Stores
from tests.helpers.records import in_store

REFRESH = 0.3


def test_a_pause_is_seen_by_jobs_taken_a_refresh_after_it_and_only_for_that_owners_queue(settings: Settings) -> None:
    async def scenario(stores: Stores) -> list[bool]:
        pauses = PausedQueues(refresh_seconds=REFRESH)
        queue = await stores.queues.ensure_queue(
            Queue(id=new_id(), owner="u1", name="held", created=utcnow(), updated=utcnow())
        )
        seen = [await pauses.paused("u1", "held", queues=stores.queues)]
        await stores.queues.set_queue_paused(queue.id, owner="u1", paused=True)
        seen.append(await pauses.paused("u1", "held", queues=stores.queues))  # read under a refresh ago: not yet
        await asyncio.sleep(REFRESH)
        seen.append(await pauses.paused("u1", "held", queues=stores.queues))
        seen.append(await pauses.paused("u2", "held", queues=stores.queues))
        seen.append(await pauses.paused("u1", "default", queues=stores.queues))
        return seen

    assert in_store(settings, scenario) == [False, False, True, False, False]
