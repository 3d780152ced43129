"""Datasets: the record of each checked bundle, its members and its descriptive fields.

While a dataset is being created its members are stored before its record, so a draft marks the
prefix they go to: ``storing`` until the members are all there, ``recording`` while the record
goes in, then gone. A draft left behind (the gateway died) is how the sweep finds objects that
nothing else refers to.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from pymongo import ASCENDING, DESCENDING

from shared.errors import NotFound
from shared.models import Dataset, utcnow
from shared.store.database import (
    Database,
    Document,
    Page,
    change_one,
    from_document,
    named_and_created,
    owner_filter,
    read_page,
    to_document,
    translated,
)
from shared.store.usage import USAGE, add_stored_bytes


@dataclass(frozen=True)
class DatasetFilter:
    """Which datasets a list shows: all of them unless narrowed."""

    name_prefix: str | None = None
    tag: str | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None


@dataclass(frozen=True)
class DatasetUpdate:
    """What to change in a dataset's description; a field left None stays as it is."""

    name: str | None = None
    description: str | None = None
    tags: list[str] | None = None


@dataclass(frozen=True)
class DatasetDraft:
    """A dataset being created: where its members go, since when, and how far it got."""

    id: str
    prefix: str
    state: Literal["storing", "recording"]


def _matching(where: DatasetFilter) -> Document:
    query = named_and_created(where.name_prefix, where.created_after, where.created_before)
    if where.tag is not None:
        query["tags"] = where.tag
    return query


class DatasetStore:
    """Datasets, each name unique per owner."""

    def __init__(self, database: Database) -> None:
        self._datasets = database.collection("datasets")
        self._usage = database.collection(USAGE)  # the owner's stored bytes, moved with each dataset
        self._drafts = database.collection("dataset_drafts")

    async def ensure_indexes(self) -> None:
        """Create the indexes the queries below rely on (idempotent)."""
        with translated("create indexes"):
            await self._datasets.create_index([("owner", ASCENDING), ("name", ASCENDING)], unique=True)
            await self._datasets.create_index([("owner", ASCENDING), ("_id", DESCENDING)])
            await self._drafts.create_index("since")

    async def insert_dataset(self, dataset: Dataset) -> None:
        """Record a dataset, and count its bytes as its owner's; Conflict if the owner already has one of that name."""
        with translated(f"dataset {dataset.name!r}"):
            await self._datasets.insert_one(to_document(dataset))
        await add_stored_bytes(self._usage, dataset.owner, dataset.size)

    async def dataset_name_taken(self, owner: str, name: str) -> bool:
        """Whether ``owner`` already has a dataset called ``name``."""
        with translated(f"dataset {name!r}"):
            return await self._datasets.find_one({"owner": owner, "name": name}, {"_id": 1}) is not None

    async def get_datasets(self, ids: list[str], *, owner: str | None = None) -> dict[str, Dataset]:
        """The datasets among ``ids`` that exist (and belong to ``owner``, unless None), by id."""
        with translated("find datasets"):
            docs = await self._datasets.find({"_id": {"$in": ids}, **owner_filter(owner)}).to_list(None)
        return {doc["_id"]: from_document(Dataset, doc) for doc in docs}

    async def get_dataset(self, dataset_id: str, *, owner: str | None = None) -> Dataset:
        """One dataset (of ``owner``, unless None), or NotFound."""
        found = await self.get_datasets([dataset_id], owner=owner)
        if dataset_id not in found:
            raise NotFound(f"no dataset {dataset_id}")
        return found[dataset_id]

    async def list_datasets(
        self, *, owner: str | None, limit: int, after: str | None, where: DatasetFilter | None = None
    ) -> Page[Dataset]:
        """Datasets, newest first, narrowed by ``where``."""
        match = owner_filter(owner) | _matching(where or DatasetFilter())
        return await read_page(self._datasets, Dataset, match, limit=limit, after=after)

    async def update_dataset(self, dataset_id: str, changes: DatasetUpdate, *, owner: str | None) -> Dataset:
        """Apply ``changes`` (and stamp ``updated``); NotFound if not ``owner``'s, Conflict if the new name is taken."""
        fields = {name: value for name, value in vars(changes).items() if value is not None}
        match = {"_id": dataset_id, **owner_filter(owner)}
        update = {"$set": {**fields, "updated": utcnow()}}
        what, missing = f"dataset {dataset_id}", f"no dataset {dataset_id}"
        return await change_one(self._datasets, Dataset, match, update, what=what, missing=missing)

    async def delete_dataset(self, dataset: Dataset) -> None:
        """Forget a dataset (its S3 objects are the caller's business), and its bytes if this call forgot it."""
        with translated(f"dataset {dataset.id}"):
            result = await self._datasets.delete_one({"_id": dataset.id})
        if result.deleted_count:
            await add_stored_bytes(self._usage, dataset.owner, -dataset.size)

    async def begin_draft(self, dataset_id: str, prefix: str) -> None:
        """Mark ``prefix`` as a dataset's being stored (before any member goes there)."""
        with translated(f"dataset draft {dataset_id}"):
            await self._drafts.insert_one({"_id": dataset_id, "prefix": prefix, "state": "storing", "since": utcnow()})

    async def seal_draft(self, dataset_id: str) -> bool:
        """Mark the members stored, the record about to go in; False if the draft was swept as abandoned meanwhile."""
        with translated(f"dataset draft {dataset_id}"):
            result = await self._drafts.update_one(
                {"_id": dataset_id, "state": "storing"}, {"$set": {"state": "recording", "since": utcnow()}}
            )
        return result.modified_count == 1

    async def end_draft(self, dataset_id: str) -> None:
        """Forget a draft: its dataset is recorded, or its objects are deleted."""
        with translated(f"dataset draft {dataset_id}"):
            await self._drafts.delete_one({"_id": dataset_id})

    async def abandoned_drafts(self, *, before: datetime, limit: int) -> list[DatasetDraft]:
        """Up to ``limit`` drafts that got no further since ``before``: their gateway died."""
        with translated("dataset drafts"):
            docs = await self._drafts.find({"since": {"$lt": before}}).limit(limit).to_list(None)
        return [DatasetDraft(id=doc["_id"], prefix=doc["prefix"], state=doc["state"]) for doc in docs]

    async def take_draft(self, draft: DatasetDraft, *, before: datetime) -> bool:
        """Take an abandoned draft away from its creator (which then fails, if alive); False if it moved on."""
        match = {"_id": draft.id, "state": draft.state, "since": {"$lt": before}}
        with translated(f"dataset draft {draft.id}"):
            result = await self._drafts.delete_one(match)
        return result.deleted_count == 1
