"""Webhooks: registered URLs, each user's signing secret, and every delivery with its attempts."""

from __future__ import annotations

from datetime import datetime

from pymongo import ASCENDING, DESCENDING

from shared.models import Delivery, DeliveryAttempt, DeliveryState, Webhook, WebhookSecret
from shared.store.database import (
    Database,
    Page,
    from_document,
    owner_filter,
    read_one,
    read_page,
    to_document,
    translated,
    unset_or_before,
    update_and_read,
)


class WebhookStore:
    """Webhooks, signing secrets and deliveries."""

    def __init__(self, database: Database) -> None:
        self._webhooks = database.collection("webhooks")
        self._secrets = database.collection("webhook_secrets")
        self._deliveries = database.collection("deliveries")

    async def ensure_indexes(self) -> None:
        """Create the indexes the queries below rely on (idempotent)."""
        with translated("create indexes"):
            await self._webhooks.create_index([("owner", ASCENDING), ("_id", DESCENDING)])
            await self._deliveries.create_index([("job_id", ASCENDING), ("_id", ASCENDING)])

    async def insert_webhook(self, webhook: Webhook) -> None:
        """Record a registered webhook."""
        with translated(f"webhook {webhook.id}"):
            await self._webhooks.insert_one(to_document(webhook))

    async def get_webhook(self, webhook_id: str, *, owner: str | None = None) -> Webhook:
        """One registered webhook (of ``owner``, unless None), or NotFound."""
        match = {"_id": webhook_id, **owner_filter(owner)}
        what, missing = f"webhook {webhook_id}", f"no webhook {webhook_id}"
        return await read_one(self._webhooks, Webhook, match, what=what, missing=missing)

    async def list_webhooks(self, *, owner: str | None, limit: int, after: str | None) -> Page[Webhook]:
        """Registered webhooks, newest first."""
        return await read_page(self._webhooks, Webhook, owner_filter(owner), limit=limit, after=after)

    async def owner_webhooks(self, owner: str) -> list[Webhook]:
        """Every webhook ``owner`` registered, oldest first."""
        with translated(f"webhooks of {owner}"):
            docs = await self._webhooks.find({"owner": owner}).sort("_id", ASCENDING).to_list(None)
        return [from_document(Webhook, doc) for doc in docs]

    async def delete_webhook(self, webhook_id: str) -> None:
        """Forget a registered webhook (its deliveries are kept)."""
        with translated(f"webhook {webhook_id}"):
            await self._webhooks.delete_one({"_id": webhook_id})

    async def set_webhook_secret(self, secret: WebhookSecret) -> None:
        """Store (or replace) a user's signing secret."""
        doc = to_document(secret)
        with translated(f"webhook secret of {secret.id}"):
            await self._secrets.replace_one({"_id": doc["_id"]}, doc, upsert=True)

    async def get_webhook_secret(self, owner: str) -> WebhookSecret | None:
        """A user's signing secret, or None if they have not made one."""
        with translated(f"webhook secret of {owner}"):
            doc = await self._secrets.find_one({"_id": owner})
        return None if doc is None else from_document(WebhookSecret, doc)

    async def add_delivery(self, delivery: Delivery) -> Delivery:
        """Record a delivery unless one of that id exists; either way, the stored one."""
        doc = to_document(delivery)
        with translated(f"delivery {delivery.id}"):
            await self._deliveries.update_one({"_id": doc["_id"]}, {"$setOnInsert": doc}, upsert=True)
        return await self.get_delivery(delivery.id)

    async def get_delivery(self, delivery_id: str, *, owner: str | None = None) -> Delivery:
        """One delivery (of ``owner``, unless None), or NotFound."""
        match = {"_id": delivery_id, **owner_filter(owner)}
        what, missing = f"delivery {delivery_id}", f"no delivery {delivery_id}"
        return await read_one(self._deliveries, Delivery, match, what=what, missing=missing)

    async def job_deliveries(self, job_id: str) -> list[Delivery]:
        """A job's deliveries, oldest first."""
        with translated(f"deliveries of {job_id}"):
            docs = await self._deliveries.find({"job_id": job_id}).sort("_id", ASCENDING).to_list(None)
        return [from_document(Delivery, doc) for doc in docs]

    async def lease_delivery(self, delivery_id: str, *, now: datetime, until: datetime) -> Delivery | None:
        """Take a pending delivery for one attempt until ``until``; None if it is done or another worker holds it."""
        with translated(f"delivery {delivery_id}"):
            doc = await update_and_read(
                self._deliveries,
                {"_id": delivery_id, "state": DeliveryState.PENDING.value, "lease": unset_or_before(now)},
                {"$set": {"lease": until}},
            )
        return None if doc is None else from_document(Delivery, doc)

    async def record_attempt(
        self,
        delivery_id: str,
        attempt: DeliveryAttempt,
        *,
        lease: datetime,
        state: DeliveryState,
        next_attempt: datetime | None,
    ) -> Delivery | None:
        """Append an attempt made under ``lease`` and move the delivery to ``state``; None if the lease was lost."""
        with translated(f"delivery {delivery_id}"):
            doc = await update_and_read(
                self._deliveries,
                {"_id": delivery_id, "state": DeliveryState.PENDING.value, "lease": lease},
                {
                    "$push": {"attempts": attempt.model_dump()},
                    "$set": {"state": state.value, "lease": None, "next_attempt": next_attempt},
                },
            )
        return None if doc is None else from_document(Delivery, doc)
