"""Dataset creation that died part-way: the sweep finds its draft and deletes the objects nothing refers to."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest

from services.gateway.domain.datasets import sweep_abandoned_drafts
from shared.models import dataset_prefix, new_id, utcnow
from shared.settings import Settings
from shared.storage import ObjectStorage
from shared.store import Stores
from tests.helpers.records import in_store, make_dataset


@pytest.fixture
def storage(settings: Settings) -> Iterator[ObjectStorage]:
    found = ObjectStorage(settings)
    found.ensure_bucket()
    try:
        yield found
    finally:
        found.close()


def stored_members(storage: ObjectStorage, prefix: str) -> None:
    """What a creation stores before its gateway dies: some members under its prefix."""
    for path in ("model/run.tcf", "model/grid.csv"):
        sink = storage.sink(prefix + path, content_type="text/plain")
        sink.write(b"member")
        sink.finish()


def left(storage: ObjectStorage, prefix: str) -> int:
    """How many objects were left under ``prefix`` (deleting them, as the test ends)."""
    return storage.delete_prefix(prefix)


def test_a_creation_abandoned_while_storing_is_swept_after_its_grace_and_its_creator_then_fails(
    settings: Settings, storage: ObjectStorage
) -> None:
    dataset_id = new_id()
    prefix = dataset_prefix(dataset_id)

    async def scenario(stores: Stores) -> tuple[int, int, bool, int]:
        await stores.datasets.begin_draft(dataset_id, prefix)
        stored_members(storage, prefix)
        within_grace = await sweep_abandoned_drafts(datasets=stores.datasets, storage=storage)
        assert storage.size(prefix + "model/run.tcf") == len(b"member")
        swept = await sweep_abandoned_drafts(datasets=stores.datasets, storage=storage, grace_seconds=0)
        sealed = await stores.datasets.seal_draft(dataset_id)  # a creator still alive after all finds it gone
        again = await sweep_abandoned_drafts(datasets=stores.datasets, storage=storage, grace_seconds=0)
        return within_grace, swept, sealed, again

    assert in_store(settings, scenario) == (0, 1, False, 0)
    assert left(storage, prefix) == 0


def test_a_creation_that_died_after_recording_its_dataset_keeps_its_objects(
    settings: Settings, storage: ObjectStorage
) -> None:
    dataset = make_dataset()

    async def scenario(stores: Stores) -> tuple[bool, int, list[object]]:
        await stores.datasets.begin_draft(dataset.id, dataset.prefix)
        stored_members(storage, dataset.prefix)
        sealed = await stores.datasets.seal_draft(dataset.id)
        await stores.datasets.insert_dataset(dataset)  # and the gateway died before forgetting the draft
        swept = await sweep_abandoned_drafts(datasets=stores.datasets, storage=storage, grace_seconds=0)
        drafts = await stores.datasets.abandoned_drafts(before=utcnow() + timedelta(hours=1), limit=10)
        return sealed, swept, list(drafts)

    assert in_store(settings, scenario) == (True, 0, [])
    assert left(storage, dataset.prefix) == 2


def test_a_creation_that_died_after_sealing_but_before_recording_is_swept(
    settings: Settings, storage: ObjectStorage
) -> None:
    dataset_id = new_id()
    prefix = dataset_prefix(dataset_id)

    async def scenario(stores: Stores) -> int:
        await stores.datasets.begin_draft(dataset_id, prefix)
        stored_members(storage, prefix)
        assert await stores.datasets.seal_draft(dataset_id)
        return await sweep_abandoned_drafts(datasets=stores.datasets, storage=storage, grace_seconds=0)

    assert in_store(settings, scenario) == 1
    assert left(storage, prefix) == 0
