"""What each user holds that a quota measures and no cheap count tells: the bytes of their files and datasets.

A counter per user (``usage``, keyed by the user's id) moved with ``$inc`` by the stores that
record and forget files and datasets, right after each write, so concurrent uploads never lose
an update. A crash between a record's write and its ``$inc`` leaves the counter off by that
record: quotas are a guard against abuse, not accounting.
"""

from __future__ import annotations

from shared.store.database import Collection, Database, translated

USAGE = "usage"


async def add_stored_bytes(usage: Collection, owner: str, delta: int) -> None:
    """Count ``delta`` bytes more (or fewer) as stored by ``owner``."""
    if delta:
        with translated(f"usage of {owner}"):
            await usage.update_one({"_id": owner}, {"$inc": {"stored_bytes": delta}}, upsert=True)


class UsageStore:
    """The per-user counters."""

    def __init__(self, database: Database) -> None:
        self._usage = database.collection(USAGE)

    async def stored_bytes(self, owner: str) -> int:
        """The bytes of ``owner``'s files and datasets, as counted."""
        with translated(f"usage of {owner}"):
            doc = await self._usage.find_one({"_id": owner}, {"stored_bytes": 1})
        return max(0, int(doc.get("stored_bytes", 0))) if doc else 0
