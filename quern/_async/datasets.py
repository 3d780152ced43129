"""Datasets made from uploaded bundles: ``client.datasets``."""

from __future__ import annotations

import builtins
from collections.abc import AsyncIterator
from typing import Any

from quern._async.connection import AsyncConnection
from quern.models import Dataset
from quern.transport import query


class Datasets:
    """Datasets made from uploaded bundles: ``client.datasets``."""

    def __init__(self, connection: AsyncConnection) -> None:
        self._connection = connection

    async def create(
        self, file_id: str, name: str, *, description: str | None = None, tags: builtins.list[str] | None = None
    ) -> Dataset:
        body = query(file_id=file_id, name=name, description=description, tags=tags)
        return await self._connection.post(Dataset, "/v1/datasets", body)

    def list(self, **filters: Any) -> AsyncIterator[Dataset]:
        return self._connection.pages(Dataset, "/v1/datasets", **filters)

    async def get(self, dataset_id: str) -> Dataset:
        return await self._connection.get(Dataset, f"/v1/datasets/{dataset_id}")

    async def delete(self, dataset_id: str) -> None:
        await self._connection.delete(f"/v1/datasets/{dataset_id}")
