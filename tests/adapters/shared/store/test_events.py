"""The event store against the test Mongo: events in id order, per job and per owner."""

from __future__ import annotations

from typing import Any

from shared.models import (
    job_event,
)
from shared.settings import Settings
from shared.store import Stores
from tests.helpers.records import in_store, make_job


def test_events_come_back_in_order_after_an_id_per_job_and_per_owner(settings: Settings) -> None:
    mine, theirs = make_job(owner="u1"), make_job(owner="u2")

    async def scenario(stores: Stores) -> Any:
        await stores.events.ensure_indexes()
        events = [job_event(mine, "progress", {"percent": p, "step": ""}) for p in range(5)]
        other = job_event(theirs, "state", {"state": "QUEUED"})
        await stores.events.insert_events([*events, other])
        after = await stores.events.events_after(events[1].id, job_id=mine.id)
        owned = await stores.events.events_after(None, owner="u2")
        return [e.id for e in events], [e.id for e in after], [e.id for e in owned], other.id

    ids, after, owned, other = in_store(settings, scenario)
    assert ids == sorted(ids) and after == ids[2:]
    assert owned == [other]
