"""Idempotency keys: a submission's key reserved, per owner, with the id its job gets; kept for a day.

A reservation holds a lease until its submission is stored (then the lease is lifted): a request
that died in between leaves a key whose lease lapses after ``LEASE_SECONDS``, and a retry takes
the reservation over, with its job id, in one conditional update.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta

from shared.errors import Duplicate
from shared.models import utcnow
from shared.store.database import Database, translated

KEPT_SECONDS = 24 * 3600
LEASE_SECONDS = 300  # far longer than storing a submission takes, even a 10,000-job batch


@dataclass(frozen=True)
class Reservation:
    """An earlier submission's hold on a key: the digest of its request, the id its job got, its lease (if held)."""

    fingerprint: str
    job_id: str
    lease_until: datetime | None = None

    @property
    def lapsed(self) -> bool:
        """Whether the request that reserved the key died before storing its submission (its lease ran out)."""
        return self.lease_until is not None and self.lease_until < utcnow()


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
        self, *, owner: str, key: str, fingerprint: str, job_id: str, lease_seconds: float = LEASE_SECONDS
    ) -> Reservation | None:
        """Reserve ``key`` for ``owner`` (leased for ``lease_seconds``): None if this got it, else the earlier hold."""
        now = utcnow()
        doc = {
            "_id": _key_id(owner, key),
            "owner": owner,
            "fingerprint": fingerprint,
            "job_id": job_id,
            "created": now,
            "lease_until": now + timedelta(seconds=lease_seconds),
        }
        try:
            with translated("idempotency key"):
                await self._keys.insert_one(doc)
            return None
        except Duplicate:
            with translated("idempotency key"):
                held = await self._keys.find_one({"_id": doc["_id"]})
            if held is None:  # released meanwhile: try again
                return await self.reserve_idempotency_key(
                    owner=owner, key=key, fingerprint=fingerprint, job_id=job_id, lease_seconds=lease_seconds
                )
            return Reservation(
                fingerprint=held["fingerprint"], job_id=held["job_id"], lease_until=held.get("lease_until")
            )

    async def take_over_idempotency_key(
        self, *, owner: str, key: str, held: Reservation, lease_seconds: float = LEASE_SECONDS
    ) -> bool:
        """Hold a reservation whose lease lapsed, for its job id; whether this call got it (one retry does)."""
        now = utcnow()
        match = {"_id": _key_id(owner, key), "job_id": held.job_id, "lease_until": {"$lt": now}}
        with translated("idempotency key"):
            lease = {"$set": {"lease_until": now + timedelta(seconds=lease_seconds)}}
            result = await self._keys.update_one(match, lease)
        return result.modified_count == 1

    async def settle_idempotency_key(self, *, owner: str, key: str) -> None:
        """Lift the lease of a reservation whose submission is stored: it is never taken over."""
        with translated("idempotency key"):
            await self._keys.update_one({"_id": _key_id(owner, key)}, {"$unset": {"lease_until": ""}})

    async def release_idempotency_key(self, *, owner: str, key: str) -> None:
        """Forget a reservation whose submission failed."""
        with translated("idempotency key"):
            await self._keys.delete_one({"_id": _key_id(owner, key)})
