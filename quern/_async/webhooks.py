"""Registered webhooks and the signing secret: ``client.webhooks``."""

from __future__ import annotations

from collections.abc import AsyncIterator

from quern._async.connection import AsyncConnection
from quern.models import Webhook


class Webhooks:
    """Registered webhooks and the signing secret: ``client.webhooks``."""

    def __init__(self, connection: AsyncConnection) -> None:
        self._connection = connection

    async def new_secret(self) -> str:
        """A new signing secret (replacing the old one), shown only now."""
        answer = await self._connection.request("POST", "/v1/webhook-secret")
        return str(answer.json()["secret"])

    async def create(self, url: str, *, progress: bool = False) -> Webhook:
        return await self._connection.post(Webhook, "/v1/webhooks", {"url": url, "progress": progress})

    def list(self) -> AsyncIterator[Webhook]:
        return self._connection.pages(Webhook, "/v1/webhooks")

    async def delete(self, webhook_id: str) -> None:
        await self._connection.delete(f"/v1/webhooks/{webhook_id}")
