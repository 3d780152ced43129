# Generated from quern/_async/webhooks.py by scripts/unasync.py: edit that file, then run `just fmt`.
"""Registered webhooks and the signing secret: ``client.webhooks``."""

from __future__ import annotations

from collections.abc import Iterator

from quern._sync.connection import Connection
from quern.models import Webhook


class Webhooks:
    """Registered webhooks and the signing secret: ``client.webhooks``."""

    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    def new_secret(self) -> str:
        """A new signing secret (replacing the old one), shown only now."""
        answer = self._connection.request("POST", "/v1/webhook-secret")
        return str(answer.json()["secret"])

    def create(self, url: str, *, progress: bool = False) -> Webhook:
        return self._connection.post(Webhook, "/v1/webhooks", {"url": url, "progress": progress})

    def list(self) -> Iterator[Webhook]:
        return self._connection.pages(Webhook, "/v1/webhooks")

    def delete(self, webhook_id: str) -> None:
        self._connection.delete(f"/v1/webhooks/{webhook_id}")
