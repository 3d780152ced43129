"""Idempotency keys: a submission's key reserved, per owner, with the id its job gets; kept for a day."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from shared.errors import Duplicate
from shared.models import utcnow
from shared.store.database import Database, translated

KEPT_SECONDS = 24 * 3600


@dataclass(frozen=True)
class Reservation:
    """An earlier submission's hold on a key: the digest of its request and the id its job got."""

    fingerprint: str
    job_id: str


def _key_id(owner: str, key: str) -> str:
    return hashlib.sha256(f"{owner}\0{key}".encode()).hexdigest()


class IdempotencyStore:
    """Reserved idempotency keys."""

    def __init__(self, database: Database) -> None:
        self._keys = database.collection("idempotency_keys")

    async def ensure_indexes(self) -> None:
        """Create the index that forgets keys after a day (idempotent)."""
        with translated("create indexes"):
            await self._keys.create_index("created", expireAfterSeconds=KEPT_SECONDS)

    async def reserve_idempotency_key(
        self, *, owner: str, key: str, fingerprint: str, job_id: str
    ) -> Reservation | None:
        """Reserve ``key`` for ``owner``: None if this call got it, else the earlier reservation."""
        doc = {
            "_id": _key_id(owner, key),
            "owner": owner,
            "fingerprint": fingerprint,
            "job_id": job_id,
            "created": utcnow(),
        }
        try:
            with translated("idempotency key"):
                await self._keys.insert_one(doc)
            return None
        except Duplicate:
            with translated("idempotency key"):
                held = await self._keys.find_one({"_id": doc["_id"]})
            if held is None:  # released meanwhile: try again
                return await self.reserve_idempotency_key(owner=owner, key=key, fingerprint=fingerprint, job_id=job_id)
            return Reservation(fingerprint=held["fingerprint"], job_id=held["job_id"])

    async def release_idempotency_key(self, *, owner: str, key: str) -> None:
        """Forget a reservation whose submission failed."""
        with translated("idempotency key"):
            await self._keys.delete_one({"_id": _key_id(owner, key)})
