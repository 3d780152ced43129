"""The migrations against the test Mongo: each runs once, is recorded by name, and a recorded one is skipped."""

from __future__ import annotations

from typing import Any

from shared.models import DatasetMember, StoredFile, new_id, utcnow
from shared.settings import Settings
from shared.store import Stores
from shared.store.database import to_document
from shared.store.migrations import MIGRATIONS, migrate
from tests.helpers.records import in_store, make_dataset, make_job

WAITING_ON = "jobs_wait_on_nothing"


def stored_before_dependencies() -> dict[str, Any]:
    """A job as stored before queues and dependencies existed: without ``waiting_on``."""
    doc = to_document(make_job())
    del doc["waiting_on"]
    return doc


def test_the_waiting_on_migration_gives_old_jobs_nothing_to_wait_on(settings: Settings) -> None:
    async def scenario(stores: Stores) -> tuple[list[str], list[str]]:
        doc = stored_before_dependencies()
        await stores.database.collection("jobs").insert_one(doc)
        ran = await migrate(stores.database)
        return ran, (await stores.jobs.get_job(doc["_id"])).waiting_on

    ran, waiting_on = in_store(settings, scenario)
    assert WAITING_ON in ran and waiting_on == []


def test_a_migration_is_recorded_and_a_second_run_does_nothing(settings: Settings) -> None:
    async def scenario(stores: Stores) -> tuple[list[str], list[str], list[str]]:
        first = await migrate(stores.database)
        second = await migrate(stores.database)
        recorded = await stores.database.collection("migrations").find({}).to_list(None)
        return first, second, [doc["_id"] for doc in recorded]

    first, second, recorded = in_store(settings, scenario)
    assert first == [migration.name for migration in MIGRATIONS]
    assert second == [] and recorded == first


def test_a_recorded_migration_is_skipped(settings: Settings) -> None:
    async def scenario(stores: Stores) -> tuple[list[str], bool]:
        await stores.database.collection("migrations").insert_one({"_id": WAITING_ON})
        doc = stored_before_dependencies()
        await stores.database.collection("jobs").insert_one(doc)
        ran = await migrate(stores.database)
        kept = await stores.database.collection("jobs").find_one({"_id": doc["_id"]})
        return ran, kept is not None and "waiting_on" not in kept

    ran, untouched = in_store(settings, scenario)
    assert WAITING_ON not in ran and untouched


def test_prepare_runs_the_migrations(settings: Settings) -> None:
    async def scenario(stores: Stores) -> list[str]:
        doc = stored_before_dependencies()
        await stores.database.collection("jobs").insert_one(doc)
        await stores.prepare()
        return (await stores.jobs.get_job(doc["_id"])).waiting_on

    assert in_store(settings, scenario) == []


def test_the_stored_bytes_counters_start_from_the_files_and_datasets_stored_before_them(settings: Settings) -> None:
    async def scenario(stores: Stores) -> tuple[int, int, int]:
        one, two = new_id(), new_id()
        members = [DatasetMember(path=p, size=10, sha256="0" * 64) for p in ("a", "b")]
        sizes = ((one, 3), (one, 4), (two, 5))
        files = [
            StoredFile(
                id=new_id(), owner=owner, name="f", size=size, sha256="0" * 64, content_type="x/y", key="k",
                created=utcnow(),
            )
            for owner, size in sizes
        ]  # fmt: skip
        # As stored before the counters existed: straight into their collections.
        await stores.database.collection("files").insert_many([to_document(f) for f in files])
        await stores.database.collection("datasets").insert_one(to_document(make_dataset(owner=two, members=members)))
        await migrate(stores.database)
        return (
            await stores.usage.stored_bytes(one),
            await stores.usage.stored_bytes(two),
            await stores.usage.stored_bytes(new_id()),
        )

    assert in_store(settings, scenario) == (7, 25, 0)
