"""The dataset store against the test Mongo: names unique per owner, even under racing inserts."""

from __future__ import annotations

import asyncio

from shared.errors import Conflict
from shared.models import (
    new_id,
)
from shared.settings import Settings
from shared.store import Stores
from tests.helpers.records import in_store, make_dataset


def test_a_dataset_name_is_unique_per_owner_even_when_inserts_race(settings: Settings) -> None:
    async def scenario(stores: Stores) -> list[BaseException | None]:
        await stores.datasets.ensure_indexes()
        name = f"same-{new_id()}"
        await stores.datasets.insert_dataset(make_dataset(name=name, owner="someone-else"))
        racing = [stores.datasets.insert_dataset(make_dataset(name=name)) for _ in range(4)]
        return await asyncio.gather(*racing, return_exceptions=True)

    outcomes = in_store(settings, scenario)
    assert outcomes.count(None) == 1
    assert all(isinstance(outcome, Conflict) for outcome in outcomes if outcome is not None)
