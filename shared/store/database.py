"""The database under the stores: one client, its collections, driver errors, record conversion and paging.

PyMongo's ``AsyncMongoClient`` (the official successor of the deprecated motor) is bound to the
event loop it first runs on: the gateway opens one in its lifespan; Dramatiq workers open one on
the event-loop thread of the ``AsyncIO`` middleware, where their async actors run.
Ids are strings (ULIDs), stored as ``_id``. Driver errors leave the stores as ``shared.errors``.

Queries keep to field-level operators (``{"lease": {"$not": {"$gte": now}}}`` rather than an
``$or`` of "unset or past"), and a change that returns the changed document is an update then a
read by ``_id`` rather than a findAndModify: the MongoDB stand-in of the tests and benchmarks
(secantusdb) plans a top-level ``$or``/``$and``/``$nor``, and every findAndModify, as a scan
of the whole collection. On MongoDB both forms use the same indexes.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

from bson.errors import InvalidDocument
from pymongo import ASCENDING, DESCENDING, AsyncMongoClient
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError, PyMongoError

from shared.call_counts import mongo_listeners
from shared.errors import Duplicate, NotFound, TooLarge, Unavailable
from shared.models import Record
from shared.settings import Settings

R = TypeVar("R", bound=Record)
Document = dict[str, Any]
Collection = AsyncCollection[Document]
# Up to this many documents are changed one update_one each: the stand-in's update_many costs as much as two or three.
MOST_IDS_UPDATED_ONE_AT_A_TIME = 2


class Database:
    """One MongoDB database over one client, shared by every store."""

    def __init__(self, client: AsyncMongoClient[Document], name: str) -> None:
        self._client = client
        self._db = client[name]

    @classmethod
    def connect(cls, settings: Settings, *, appname: str) -> Database:
        """Create a client for the running event loop; it connects lazily."""
        client: AsyncMongoClient[Document] = AsyncMongoClient(
            settings.mongo_url.get_secret_value(),
            tz_aware=True,
            serverSelectionTimeoutMS=int(settings.mongo_timeout_seconds * 1000),
            appname=appname,
            event_listeners=mongo_listeners(settings.quern_count_calls),
        )
        return cls(client, settings.mongo_database)

    def collection(self, name: str) -> Collection:
        """The collection called ``name``."""
        return self._db[name]

    async def close(self) -> None:
        """Close the client's connections."""
        await self._client.close()

    async def server_time(self) -> datetime:
        """The database server's clock: leases are stamped and judged by it, never by a worker's own."""
        with translated("server time"):
            answer = await self._db.command("hello")
        moment: datetime = answer["localTime"]
        return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)  # commands decode naive

    async def ping(self) -> None:
        """Raise Unavailable unless the server answers."""
        with translated("ping"):
            await self._client.admin.command("ping")


@contextmanager
def translated(what: str) -> Iterator[None]:
    """Turn the driver's errors inside into ``shared.errors``, naming ``what`` was being done."""
    try:
        yield
    except DuplicateKeyError as exc:
        raise Duplicate(f"{what}: already exists") from exc
    except InvalidDocument as exc:  # DocumentTooLarge too: past MongoDB's 16 MiB per document or command
        raise TooLarge(f"{what}: too large to store") from exc
    except PyMongoError as exc:
        raise Unavailable(f"MongoDB did not answer ({what})") from exc


def to_document(record: Record) -> Document:
    """The document that stores ``record``: its id as ``_id``, enums as their plain values."""
    doc = record.model_dump(mode="python", by_alias=True)
    doc["_id"] = doc.pop("id")
    for name in ("state", "role"):  # enums are stored as their plain string values
        if hasattr(doc.get(name), "value"):
            doc[name] = doc[name].value
    return doc


def from_document(cls: type[R], doc: Document) -> R:
    """The record a stored document holds."""
    doc["id"] = doc.pop("_id")
    return cls.model_validate(doc)


def owner_filter(owner: str | None) -> Document:
    """The filter that keeps a user to their own documents; None (an admin) sees all."""
    return {} if owner is None else {"owner": owner}


def unset_or_before(moment: datetime) -> Document:
    """Matches a lease or stamp that is unset (None, missing) or earlier than ``moment``."""
    return {"$not": {"$gte": moment}}


def starting_with(prefix: str) -> Document:
    """Matches a string that begins with ``prefix``, taken literally."""
    return {"$regex": "^" + re.escape(prefix)}


def named_and_created(name_prefix: str | None, after: datetime | None, before: datetime | None) -> Document:
    """Matches a record whose ``name`` starts with ``name_prefix`` and that was created in between (each if given)."""
    query: Document = {}
    if name_prefix:
        query["name"] = starting_with(name_prefix)
    if created := between(after, before):
        query["created"] = created
    return query


def between(after: datetime | None, before: datetime | None) -> Document:
    """Matches a time after ``after`` and before ``before`` (either may be open); empty if both are."""
    span: Document = {}
    if after is not None:
        span["$gt"] = after
    if before is not None:
        span["$lt"] = before
    return span


async def update_and_read(collection: Collection, match: Document, update: Document) -> Document | None:
    """Apply ``update`` to the document ``match`` finds by ``_id``; it as read right after, or None if none matched.

    A change made by someone else in between shows in the document read: it is the latest, never an older one.
    """
    result = await collection.update_one(match, update)
    if not result.matched_count:
        return None
    return await collection.find_one({"_id": match["_id"]})


async def update_by_ids(collection: Collection, ids: list[str], match: Document, update: Document) -> int:
    """Apply ``update`` to the documents of these ids that also match ``match``; how many changed.

    ``MOST_IDS_UPDATED_ONE_AT_A_TIME`` ids or fewer go one ``update_one`` each, more in one ``update_many``.
    """
    if len(ids) <= MOST_IDS_UPDATED_ONE_AT_A_TIME:
        changed = 0
        for one in ids:
            changed += (await collection.update_one({"_id": one, **match}, update)).modified_count
        return changed
    result = await collection.update_many({"_id": {"$in": ids}, **match}, update)
    return int(result.modified_count)


async def read_one(collection: Collection, cls: type[R], match: Document, *, what: str, missing: str) -> R:
    """The record ``match`` finds, or NotFound saying ``missing``; ``what`` names the read if the server fails."""
    with translated(what):
        doc = await collection.find_one(match)
    if doc is None:
        raise NotFound(missing)
    return from_document(cls, doc)


async def change_one(
    collection: Collection, cls: type[R], match: Document, update: Document, *, what: str, missing: str
) -> R:
    """The record ``match`` finds by ``_id``, changed by ``update`` and read back; NotFound saying ``missing``."""
    with translated(what):
        doc = await update_and_read(collection, match, update)
    if doc is None:
        raise NotFound(missing)
    return from_document(cls, doc)


@dataclass(frozen=True)
class Page(Generic[R]):
    """One page of a list (newest first unless asked otherwise) and the id to continue after (None on the last page)."""

    items: list[R]
    next_after: str | None


async def read_page(
    collection: Collection,
    cls: type[R],
    match: Document,
    *,
    limit: int,
    after: str | None,
    oldest_first: bool = False,
) -> Page[R]:
    """Up to ``limit`` records that match, in id order, after the id ``after``."""
    # Ids are ULIDs, so id order is creation order and the cursor is simply the last id seen.
    query = dict(match)
    if after is not None:
        query["_id"] = {"$gt" if oldest_first else "$lt": after}
    order = ASCENDING if oldest_first else DESCENDING
    with translated(f"list {collection.name}"):
        docs = await collection.find(query).sort("_id", order).limit(limit + 1).to_list(None)
    more = len(docs) > limit
    docs = docs[:limit]
    next_after = docs[-1]["_id"] if more and docs else None
    return Page([from_document(cls, doc) for doc in docs], next_after)
