"""Named changes to stored data, each run once per database and recorded by name in ``migrations``.

A migration must be idempotent all the same: two processes starting together may both run it
before either records it. Add new ones at the end of ``MIGRATIONS``; never rename one.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import structlog

from shared.errors import Duplicate
from shared.models import utcnow
from shared.store.database import Database, Document, translated
from shared.store.usage import USAGE

log = structlog.get_logger()


@dataclass(frozen=True)
class Migration:
    """One change to stored data, known by its name once it has run."""

    name: str
    apply: Callable[[Database], Awaitable[None]]


async def _jobs_wait_on_nothing(database: Database) -> None:
    """Jobs stored before queues and dependencies existed wait on nothing."""
    with translated("back-fill waiting_on"):
        await database.collection("jobs").update_many({"waiting_on": {"$exists": False}}, {"$set": {"waiting_on": []}})


async def _count_stored_bytes(database: Database) -> None:
    """The stored-bytes counters (``shared/store/usage.py``) start from the files and datasets stored before them."""
    totals: dict[str, int] = {}
    with translated("count stored bytes"):
        files: list[Document] = [{"$group": {"_id": "$owner", "n": {"$sum": "$size"}}}]
        members: list[Document] = [
            {"$unwind": "$members"},
            {"$group": {"_id": "$owner", "n": {"$sum": "$members.size"}}},
        ]
        for name, pipeline in (("files", files), ("datasets", members)):
            async for row in await database.collection(name).aggregate(pipeline):
                totals[row["_id"]] = totals.get(row["_id"], 0) + int(row["n"])
        for owner, stored in totals.items():
            await database.collection(USAGE).update_one({"_id": owner}, {"$set": {"stored_bytes": stored}}, upsert=True)


MIGRATIONS = (
    Migration("jobs_wait_on_nothing", _jobs_wait_on_nothing),
    Migration("count_stored_bytes", _count_stored_bytes),
)


async def migrate(database: Database, migrations: Sequence[Migration] = MIGRATIONS) -> list[str]:
    """Run, in order, the migrations this database has no record of, and record each; the names of those run."""
    recorded = database.collection("migrations")
    with translated("read migrations"):
        done = {doc["_id"] for doc in await recorded.find({}, {"_id": 1}).to_list(None)}
    ran = []
    for migration in migrations:
        if migration.name in done:
            continue
        await migration.apply(database)
        try:
            with translated(f"migration {migration.name}"):
                await recorded.insert_one({"_id": migration.name, "applied": utcnow()})
        except Duplicate:  # another process ran it at the same time
            pass
        log.info("migration_applied", migration=migration.name)
        ran.append(migration.name)
    return ran
