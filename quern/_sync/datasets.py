# Generated from quern/_async/datasets.py by scripts/unasync.py: edit that file, then run `just fmt`.
"""Datasets made from uploaded bundles: ``client.datasets``."""

from __future__ import annotations

import builtins
from collections.abc import Iterator
from typing import Any

from quern._sync.connection import Connection
from quern.models import Dataset
from quern.transport import query


class Datasets:
    """Datasets made from uploaded bundles: ``client.datasets``."""

    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    def create(
        self, file_id: str, name: str, *, description: str | None = None, tags: builtins.list[str] | None = None
    ) -> Dataset:
        body = query(file_id=file_id, name=name, description=description, tags=tags)
        return self._connection.post(Dataset, "/v1/datasets", body)

    def list(self, **filters: Any) -> Iterator[Dataset]:
        return self._connection.pages(Dataset, "/v1/datasets", **filters)

    def get(self, dataset_id: str) -> Dataset:
        return self._connection.get(Dataset, f"/v1/datasets/{dataset_id}")

    def delete(self, dataset_id: str) -> None:
        self._connection.delete(f"/v1/datasets/{dataset_id}")
