"""The MongoDB adapter: every query quern makes lives here.

PyMongo's ``AsyncMongoClient`` (the official successor of the deprecated motor) is bound to the
event loop it first runs on: the gateway opens one in its lifespan; Dramatiq workers open one on
the event-loop thread of the ``AsyncIO`` middleware, where their async actors run.
Ids are strings (ULIDs), stored as ``_id``. Driver errors leave this module as ``shared.errors``.

Queries keep to field-level operators (``{"lease": {"$not": {"$gte": now}}}`` rather than an
``$or`` of "unset or past"), and a change that returns the changed document is an update then a
read by ``_id`` rather than a findAndModify: the MongoDB stand-in of the tests and benchmarks
(secantusdb) plans a top-level ``$or``/``$and``/``$nor``, and every findAndModify, as a scan
of the whole collection. On MongoDB both forms use the same indexes.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Generic, TypeVar

import structlog
from bson.errors import InvalidDocument
from pymongo import ASCENDING, DESCENDING, AsyncMongoClient, ReturnDocument
from pymongo.errors import DuplicateKeyError, PyMongoError

from shared.apps import RegisteredApp
from shared.errors import AppError, Duplicate, NotFound, TooLarge, Unavailable
from shared.models import (
    ApiKey,
    Archive,
    Batch,
    Dataset,
    Delivery,
    DeliveryAttempt,
    DeliveryState,
    Event,
    Job,
    JobError,
    JobProgress,
    JobState,
    OutputFile,
    PendingUpload,
    Queue,
    Record,
    Selection,
    StateChange,
    StoredFile,
    User,
    Webhook,
    WebhookSecret,
    WorkerInfo,
    utcnow,
)
from shared.settings import Settings

log = structlog.get_logger()
# Up to this many documents are changed one update_one each: the stand-in's update_many costs as much as two or three.
FEW = 2
R = TypeVar("R", bound=Record)
Document = dict[str, Any]


@contextmanager
def _translated(what: str) -> Iterator[None]:
    try:
        yield
    except DuplicateKeyError as exc:
        raise Duplicate(f"{what}: already exists") from exc
    except InvalidDocument as exc:  # DocumentTooLarge too: past MongoDB's 16 MiB per document or command
        raise TooLarge(f"{what}: too large to store") from exc
    except PyMongoError as exc:
        raise Unavailable(f"MongoDB did not answer ({what})") from exc


def _to_doc(record: Record) -> Document:
    doc = record.model_dump(mode="python", by_alias=True)
    doc["_id"] = doc.pop("id")
    for name in ("state", "role"):  # enums are stored as their plain string values
        if hasattr(doc.get(name), "value"):
            doc[name] = doc[name].value
    return doc


def _unset_or_before(moment: datetime) -> Document:
    """Matches a lease or stamp that is unset (None, missing) or earlier than ``moment``."""
    return {"$not": {"$gte": moment}}


async def _update_and_read(collection: Any, match: Document, update: Document) -> Document | None:
    """Apply ``update`` to the document ``match`` finds by ``_id``; it as read right after, or None if none matched.

    A change made by someone else in between shows in the document read: it is the latest, never an older one.
    """
    result = await collection.update_one(match, update)
    if not result.matched_count:
        return None
    found: Document | None = await collection.find_one({"_id": match["_id"]})
    return found


async def _update_by_ids(collection: Any, ids: list[str], match: Document, update: Document) -> int:
    """Apply ``update`` to the documents of these ids that also match ``match``; how many changed.

    ``FEW`` ids or fewer go one ``update_one`` each, more in one ``update_many``.
    """
    if len(ids) <= FEW:
        changed = 0
        for one in ids:
            changed += (await collection.update_one({"_id": one, **match}, update)).modified_count
        return changed
    result = await collection.update_many({"_id": {"$in": ids}, **match}, update)
    return int(result.modified_count)


def _mine(owner: str | None) -> Document:
    """The filter that keeps a user to their own documents; None (an admin) sees all."""
    return {} if owner is None else {"owner": owner}


@dataclass(frozen=True)
class Page(Generic[R]):
    """One page of a list (newest first unless asked otherwise) and the id to continue after (None on the last page)."""

    items: list[R]
    next_after: str | None


@dataclass(frozen=True)
class FileFilter:
    """Which files a list shows: all of them unless narrowed."""

    name_prefix: str | None = None
    content_type: str | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None

    def query(self) -> Document:
        """The Mongo filter for these conditions."""
        query: Document = {}
        if self.name_prefix:
            query["name"] = {"$regex": "^" + re.escape(self.name_prefix)}
        if self.content_type is not None:
            query["content_type"] = self.content_type
        created: Document = {}
        if self.created_after is not None:
            created["$gt"] = self.created_after
        if self.created_before is not None:
            created["$lt"] = self.created_before
        if created:
            query["created"] = created
        return query


def _between(after: datetime | None, before: datetime | None) -> Document:
    span: Document = {}
    if after is not None:
        span["$gt"] = after
    if before is not None:
        span["$lt"] = before
    return span


@dataclass(frozen=True)
class JobFilter:
    """Which jobs a list shows: all of them unless narrowed."""

    states: tuple[JobState, ...] = ()
    exit_code: int | None = None
    app: str | None = None
    tag: str | None = None
    name_prefix: str | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None
    finished_after: datetime | None = None
    finished_before: datetime | None = None
    queue: str | None = None
    batch: str | None = None

    def query(self) -> Document:
        """The Mongo filter for these conditions."""
        query: Document = {}
        if self.queue is not None:
            query["queue"] = self.queue
        if self.batch is not None:
            query["batch"] = self.batch
        if self.states:
            query["state"] = {"$in": [state.value for state in self.states]}
        if self.exit_code is not None:
            query["exit_code"] = self.exit_code
        if self.app is not None:
            query["app"] = self.app
        if self.tag is not None:
            query["tags"] = self.tag
        if self.name_prefix:
            query["name"] = {"$regex": "^" + re.escape(self.name_prefix)}
        if created := _between(self.created_after, self.created_before):
            query["created"] = created
        if finished := _between(self.finished_after, self.finished_before):
            query["finished"] = finished
        return query


def _from_doc(cls: type[R], doc: Document) -> R:
    doc["id"] = doc.pop("_id")
    return cls.model_validate(doc)


class MongoStore:
    """Users, API keys, files, pending uploads, datasets, apps, jobs and their events in one database."""

    def __init__(self, client: AsyncMongoClient[Document], database: str) -> None:
        self._client = client
        self._db = client[database]
        self._files = self._db["files"]
        self._apps = self._db["apps"]
        self._jobs = self._db["jobs"]
        self._users = self._db["users"]
        self._keys = self._db["api_keys"]
        self._workers = self._db["workers"]
        self._idempotency = self._db["idempotency_keys"]
        self._uploads = self._db["uploads"]
        self._datasets = self._db["datasets"]
        self._events = self._db["events"]
        self._queues = self._db["queues"]
        self._batches = self._db["batches"]
        self._webhooks = self._db["webhooks"]
        self._webhook_secrets = self._db["webhook_secrets"]
        self._deliveries = self._db["deliveries"]

    @classmethod
    def connect(cls, settings: Settings, *, appname: str) -> MongoStore:
        """Create a client for the running event loop; it connects lazily."""
        client: AsyncMongoClient[Document] = AsyncMongoClient(
            settings.mongo_url.get_secret_value(),
            tz_aware=True,
            serverSelectionTimeoutMS=int(settings.mongo_timeout_seconds * 1000),
            appname=appname,
        )
        return cls(client, settings.mongo_database)

    async def close(self) -> None:
        """Close the client's connections."""
        await self._client.close()

    async def ping(self) -> None:
        """Raise Unavailable unless the server answers."""
        with _translated("ping"):
            await self._client.admin.command("ping")

    async def ensure_indexes(self, *, event_retention_seconds: int = 7 * 24 * 3600) -> None:
        """Create the indexes the queries below rely on (idempotent); events expire after the retention."""
        with _translated("create indexes"):
            await self._events.create_index([("job_id", ASCENDING), ("_id", ASCENDING)])
            await self._events.create_index([("owner", ASCENDING), ("_id", ASCENDING)])
            await self._events.create_index("at", expireAfterSeconds=event_retention_seconds)
            await self._jobs.create_index([("state", ASCENDING), ("created", DESCENDING)])
            await self._jobs.create_index([("owner", ASCENDING), ("_id", DESCENDING)])
            await self._files.create_index([("owner", ASCENDING), ("_id", DESCENDING)])
            await self._users.create_index("username", unique=True)
            await self._keys.create_index([("owner", ASCENDING), ("_id", DESCENDING)])
            await self._uploads.create_index("expires")
            await self._idempotency.create_index("created", expireAfterSeconds=24 * 3600)
            await self._datasets.create_index([("owner", ASCENDING), ("name", ASCENDING)], unique=True)
            await self._datasets.create_index([("owner", ASCENDING), ("_id", DESCENDING)])
            await self._apps.create_index([("name", ASCENDING), ("registered", DESCENDING)])
            await self._jobs.create_index([("datasets", ASCENDING), ("state", ASCENDING)])
            # The list filters: each narrows one owner's jobs, which are then read in id order.
            # (owner, state, _id) also serves the (owner, state) lookups of active jobs.
            await self._jobs.create_index([("owner", ASCENDING), ("state", ASCENDING), ("_id", DESCENDING)])
            await self._jobs.create_index([("owner", ASCENDING), ("app", ASCENDING), ("_id", DESCENDING)])
            await self._jobs.create_index([("owner", ASCENDING), ("tags", ASCENDING), ("_id", DESCENDING)])
            await self._jobs.create_index([("owner", ASCENDING), ("name", ASCENDING)])
            await self._jobs.create_index([("owner", ASCENDING), ("finished", DESCENDING)])
            await self._jobs.create_index([("owner", ASCENDING), ("queue", ASCENDING), ("state", ASCENDING)])
            # The dispatcher's scan: undispatched QUEUED jobs, highest priority first, then oldest.
            await self._jobs.create_index(
                [("state", ASCENDING), ("dispatched", ASCENDING), ("priority", DESCENDING), ("_id", ASCENDING)]
            )
            await self._jobs.create_index([("waiting_on", ASCENDING), ("state", ASCENDING)])
            await self._jobs.create_index([("batch", ASCENDING), ("_id", ASCENDING)])
            await self._batches.create_index([("committed", ASCENDING), ("created", ASCENDING)])
            # Jobs stored before queues and dependencies existed wait on nothing.
            await self._jobs.update_many({"waiting_on": {"$exists": False}}, {"$set": {"waiting_on": []}})
            await self._queues.create_index([("owner", ASCENDING), ("name", ASCENDING)], unique=True)
            await self._queues.create_index([("owner", ASCENDING), ("_id", DESCENDING)])
            # The retention sweeper's scans: ended jobs not yet expired, by when they expire or ended.
            await self._jobs.create_index([("expired", ASCENDING), ("expires", ASCENDING)])
            await self._jobs.create_index([("expired", ASCENDING), ("finished", ASCENDING)])
            await self._webhooks.create_index([("owner", ASCENDING), ("_id", DESCENDING)])
            await self._deliveries.create_index([("job_id", ASCENDING), ("_id", ASCENDING)])

    async def _page(
        self,
        collection: Any,
        cls: type[R],
        match: Document,
        *,
        limit: int,
        after: str | None,
        oldest_first: bool = False,
    ) -> Page[R]:
        # Ids are ULIDs, so id order is creation order and the cursor is simply the last id seen.
        query = dict(match)
        if after is not None:
            query["_id"] = {"$gt" if oldest_first else "$lt": after}
        order = ASCENDING if oldest_first else DESCENDING
        with _translated(f"list {collection.name}"):
            docs = await collection.find(query).sort("_id", order).limit(limit + 1).to_list(None)
        more = len(docs) > limit
        docs = docs[:limit]
        next_after = docs[-1]["_id"] if more and docs else None
        return Page([_from_doc(cls, doc) for doc in docs], next_after)

    # Users and API keys

    async def insert_user(self, user: User) -> None:
        """Record a new user; Conflict if the username is taken."""
        with _translated(f"user {user.username}"):
            await self._users.insert_one(_to_doc(user))

    async def get_user(self, user_id: str) -> User:
        """One user by id, or NotFound."""
        with _translated(f"user {user_id}"):
            doc = await self._users.find_one({"_id": user_id})
        if doc is None:
            raise NotFound(f"no user {user_id}")
        return _from_doc(User, doc)

    async def find_user(self, username: str) -> User | None:
        """The user with this username, if any."""
        with _translated(f"user {username}"):
            doc = await self._users.find_one({"username": username})
        return None if doc is None else _from_doc(User, doc)

    async def list_users(self, *, limit: int, after: str | None) -> Page[User]:
        """Users, newest first."""
        return await self._page(self._users, User, {}, limit=limit, after=after)

    async def set_user_disabled(self, user_id: str, disabled: bool) -> User:
        """Disable (or re-enable) a user; NotFound if there is none."""
        with _translated(f"user {user_id}"):
            doc = await _update_and_read(self._users, {"_id": user_id}, {"$set": {"disabled": disabled}})
        if doc is None:
            raise NotFound(f"no user {user_id}")
        return _from_doc(User, doc)

    async def set_user_limit(self, user_id: str, max_running: int | None) -> User:
        """Set (or clear, with None) a user's own limit of jobs running at once; NotFound if there is none."""
        with _translated(f"user {user_id}"):
            doc = await _update_and_read(self._users, {"_id": user_id}, {"$set": {"max_running": max_running}})
        if doc is None:
            raise NotFound(f"no user {user_id}")
        return _from_doc(User, doc)

    async def user_limits(self) -> dict[str, int]:
        """The users that have a limit of their own, and that limit."""
        with _translated("user limits"):
            docs = await self._users.find({"max_running": {"$ne": None}}, {"max_running": 1}).to_list(None)
        return {doc["_id"]: int(doc["max_running"]) for doc in docs}

    async def insert_key(self, key: ApiKey) -> None:
        """Record a new API key."""
        with _translated(f"api key {key.id}"):
            await self._keys.insert_one(_to_doc(key))

    async def get_key(self, key_id: str, *, owner: str | None = None) -> ApiKey:
        """One API key (of ``owner``, unless None), or NotFound."""
        with _translated(f"api key {key_id}"):
            doc = await self._keys.find_one({"_id": key_id, **_mine(owner)})
        if doc is None:
            raise NotFound(f"no API key {key_id}")
        return _from_doc(ApiKey, doc)

    async def list_keys(self, *, owner: str | None, limit: int, after: str | None) -> Page[ApiKey]:
        """API keys, newest first."""
        return await self._page(self._keys, ApiKey, _mine(owner), limit=limit, after=after)

    async def revoke_key(self, key_id: str, *, owner: str | None) -> ApiKey:
        """Revoke an API key (once; revoking again changes nothing); NotFound if not ``owner``'s."""
        with _translated(f"api key {key_id}"):
            await self._keys.update_one(
                {"_id": key_id, "revoked": None, **_mine(owner)}, {"$set": {"revoked": utcnow()}}
            )
        return await self.get_key(key_id, owner=owner)

    # Files

    async def insert_file(self, file: StoredFile) -> None:
        """Record an uploaded file."""
        with _translated(f"file {file.id}"):
            await self._files.insert_one(_to_doc(file))

    async def get_files(self, ids: list[str], *, owner: str | None = None) -> dict[str, StoredFile]:
        """The files among ``ids`` that exist (and belong to ``owner``, unless None), by id."""
        with _translated("find files"):
            docs = await self._files.find({"_id": {"$in": ids}, **_mine(owner)}).to_list(None)
        return {doc["_id"]: _from_doc(StoredFile, doc) for doc in docs}

    async def get_file(self, file_id: str, *, owner: str | None = None) -> StoredFile:
        """One file, or NotFound."""
        found = await self.get_files([file_id], owner=owner)
        if file_id not in found:
            raise NotFound(f"no file {file_id}")
        return found[file_id]

    async def list_files(
        self, *, owner: str | None, limit: int, after: str | None, where: FileFilter | None = None
    ) -> Page[StoredFile]:
        """Files, newest first, narrowed by ``where``."""
        match = _mine(owner) | (where or FileFilter()).query()
        return await self._page(self._files, StoredFile, match, limit=limit, after=after)

    async def delete_file(self, file_id: str) -> None:
        """Forget a file (its S3 object is the caller's business)."""
        with _translated(f"file {file_id}"):
            await self._files.delete_one({"_id": file_id})

    # Pending uploads

    async def insert_upload(self, upload: PendingUpload) -> None:
        """Record an announced upload."""
        with _translated(f"upload {upload.id}"):
            await self._uploads.insert_one(_to_doc(upload))

    async def get_upload(self, upload_id: str, *, owner: str | None = None) -> PendingUpload:
        """One pending upload (of ``owner``, unless None), or NotFound."""
        with _translated(f"upload {upload_id}"):
            doc = await self._uploads.find_one({"_id": upload_id, **_mine(owner)})
        if doc is None:
            raise NotFound(f"no pending upload {upload_id}")
        return _from_doc(PendingUpload, doc)

    async def claim_upload(self, upload_id: str, *, owner: str | None, stale_before: datetime) -> PendingUpload | None:
        """Mark an upload as being completed; None if another request holds it (since ``stale_before``)."""
        match = {"_id": upload_id, **_mine(owner), "completing": _unset_or_before(stale_before)}
        with _translated(f"upload {upload_id}"):
            doc = await _update_and_read(self._uploads, match, {"$set": {"completing": utcnow()}})
        return None if doc is None else _from_doc(PendingUpload, doc)

    async def expired_uploads(self, *, before: datetime, stale_before: datetime, limit: int) -> list[PendingUpload]:
        """Up to ``limit`` uploads expired before ``before`` that no request began completing since ``stale_before``."""
        match = {"expires": {"$lt": before}, "completing": _unset_or_before(stale_before)}
        with _translated("expired uploads"):
            docs = await self._uploads.find(match).limit(limit).to_list(None)
        return [_from_doc(PendingUpload, doc) for doc in docs]

    async def release_upload(self, upload_id: str) -> None:
        """Let another request complete the upload (this one could not)."""
        with _translated(f"upload {upload_id}"):
            await self._uploads.update_one({"_id": upload_id}, {"$set": {"completing": None}})

    async def delete_upload(self, upload_id: str) -> None:
        """Forget a pending upload."""
        with _translated(f"upload {upload_id}"):
            await self._uploads.delete_one({"_id": upload_id})

    # Datasets

    async def insert_dataset(self, dataset: Dataset) -> None:
        """Record a dataset; Conflict if the owner already has one of that name."""
        with _translated(f"dataset {dataset.name!r}"):
            await self._datasets.insert_one(_to_doc(dataset))

    async def dataset_name_taken(self, owner: str, name: str) -> bool:
        """Whether ``owner`` already has a dataset called ``name``."""
        with _translated(f"dataset {name!r}"):
            return await self._datasets.find_one({"owner": owner, "name": name}, {"_id": 1}) is not None

    async def get_datasets(self, ids: list[str], *, owner: str | None = None) -> dict[str, Dataset]:
        """The datasets among ``ids`` that exist (and belong to ``owner``, unless None), by id."""
        with _translated("find datasets"):
            docs = await self._datasets.find({"_id": {"$in": ids}, **_mine(owner)}).to_list(None)
        return {doc["_id"]: _from_doc(Dataset, doc) for doc in docs}

    async def get_dataset(self, dataset_id: str, *, owner: str | None = None) -> Dataset:
        """One dataset (of ``owner``, unless None), or NotFound."""
        found = await self.get_datasets([dataset_id], owner=owner)
        if dataset_id not in found:
            raise NotFound(f"no dataset {dataset_id}")
        return found[dataset_id]

    async def list_datasets(
        self,
        *,
        owner: str | None,
        limit: int,
        after: str | None,
        name_prefix: str | None = None,
        tag: str | None = None,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
    ) -> Page[Dataset]:
        """Datasets, newest first, narrowed by name prefix, tag and creation time."""
        match = _mine(owner)
        if name_prefix:
            match["name"] = {"$regex": "^" + re.escape(name_prefix)}
        if tag is not None:
            match["tags"] = tag
        created = {}
        if created_after is not None:
            created["$gt"] = created_after
        if created_before is not None:
            created["$lt"] = created_before
        if created:
            match["created"] = created
        return await self._page(self._datasets, Dataset, match, limit=limit, after=after)

    async def update_dataset(self, dataset_id: str, changes: Document, *, owner: str | None) -> Dataset:
        """Set ``changes`` (and ``updated``); NotFound if not ``owner``'s, Conflict if the new name is taken."""
        with _translated(f"dataset {dataset_id}"):
            doc = await _update_and_read(
                self._datasets, {"_id": dataset_id, **_mine(owner)}, {"$set": {**changes, "updated": utcnow()}}
            )
        if doc is None:
            raise NotFound(f"no dataset {dataset_id}")
        return _from_doc(Dataset, doc)

    async def delete_dataset(self, dataset_id: str) -> None:
        """Forget a dataset (its S3 objects are the caller's business)."""
        with _translated(f"dataset {dataset_id}"):
            await self._datasets.delete_one({"_id": dataset_id})

    async def dataset_in_use(self, dataset_id: str) -> bool:
        """Whether a QUEUED or RUNNING job reads the dataset."""
        busy = [JobState.QUEUED.value, JobState.RUNNING.value]
        with _translated(f"jobs using dataset {dataset_id}"):
            return await self._jobs.find_one({"datasets": dataset_id, "state": {"$in": busy}}, {"_id": 1}) is not None

    # Apps

    async def insert_app(self, app: RegisteredApp) -> None:
        """Record one version of an app; Conflict if that version is registered already."""
        with _translated(f"app {app.id}"):
            await self._apps.insert_one(_to_doc(app))

    async def get_app(self, name: str, version: str) -> RegisteredApp:
        """One version of an app, enabled or not, or NotFound."""
        with _translated(f"app {name}@{version}"):
            doc = await self._apps.find_one({"name": name, "version": version})
        if doc is None:
            raise NotFound(f"no app {name!r} version {version!r}")
        return _from_doc(RegisteredApp, doc)

    async def current_app(self, name: str) -> RegisteredApp | None:
        """The latest enabled version of an app, else its latest version (disabled), else None."""
        newest = [("registered", DESCENDING), ("_id", DESCENDING)]
        with _translated(f"app {name}"):
            doc = await self._apps.find_one({"name": name, "disabled": None}, sort=newest)
            if doc is None:
                doc = await self._apps.find_one({"name": name}, sort=newest)
        return None if doc is None else _from_doc(RegisteredApp, doc)

    async def app_versions(self, name: str | None = None) -> list[RegisteredApp]:
        """Every version of one app (or of all apps), by name, newest first."""
        order = [("name", ASCENDING), ("registered", DESCENDING), ("_id", DESCENDING)]
        with _translated("list apps"):
            docs = await self._apps.find({} if name is None else {"name": name}).sort(order).to_list(None)
        return [_from_doc(RegisteredApp, doc) for doc in docs]

    async def set_app_disabled(self, name: str, version: str | None, *, by: str | None) -> None:
        """Disable (``by`` someone) or enable (``by`` None) one version of an app, or every version.

        A version disabled already keeps the time and name of whoever disabled it first.
        """
        match: Document = {"name": name} | ({} if version is None else {"version": version})
        if by is None:
            update: Document = {"$set": {"disabled": None, "disabled_by": None}}
        else:
            match["disabled"] = None
            update = {"$set": {"disabled": utcnow(), "disabled_by": by}}
        with _translated(f"app {name}"):
            await self._apps.update_many(match, update)

    # Jobs

    async def insert_job(self, job: Job) -> None:
        """Record a new job."""
        with _translated(f"job {job.id}"):
            await self._jobs.insert_one(_to_doc(job))

    async def get_job(self, job_id: str, *, owner: str | None = None) -> Job:
        """One job (of ``owner``, unless None), or NotFound."""
        with _translated(f"job {job_id}"):
            doc = await self._jobs.find_one({"_id": job_id, **_mine(owner)})
        if doc is None:
            raise NotFound(f"no job {job_id}")
        return _from_doc(Job, doc)

    async def list_jobs(
        self,
        *,
        owner: str | None,
        limit: int,
        after: str | None,
        where: JobFilter | None = None,
        oldest_first: bool = False,
    ) -> Page[Job]:
        """Jobs, newest first (or oldest first), narrowed by ``where``."""
        match = _mine(owner) | (where or JobFilter()).query()
        return await self._page(self._jobs, Job, match, limit=limit, after=after, oldest_first=oldest_first)

    async def active_jobs_using(self, file_id: str, *, owner: str) -> list[str]:
        """Ids of ``owner``'s QUEUED or RUNNING jobs that take ``file_id`` as an input.

        A job's inputs are its owner's files, so only that owner's active jobs are read; the
        input map is searched here rather than in the query, as its keys are app-defined.
        """
        active = [JobState.QUEUED.value, JobState.RUNNING.value]
        with _translated(f"jobs using {file_id}"):
            docs = await self._jobs.find({"owner": owner, "state": {"$in": active}}, {"inputs": 1}).to_list(None)
        return sorted(doc["_id"] for doc in docs if file_id in (doc.get("inputs") or {}).values())

    async def delete_job(self, job_id: str) -> None:
        """Forget a job (its S3 objects are the caller's business)."""
        with _translated(f"job {job_id}"):
            await self._jobs.delete_one({"_id": job_id})

    async def claim_job(self, job_id: str, *, worker: str) -> Job | None:
        """Move a dispatched job from QUEUED to RUNNING for ``worker``; None if someone else got there first.

        A job taken back from RabbitMQ (its lease cleared) is not claimed: its stale message is dropped.
        A dispatcher's lease stays once the message is sent, so a runner may claim before the send is recorded.
        """
        return await self._transition(
            {"_id": job_id, "state": JobState.QUEUED.value, "dispatch_lease": {"$ne": None}},
            {"state": JobState.RUNNING.value, "worker": worker, "started": utcnow()},
        )

    async def finish_job(
        self,
        job_id: str,
        *,
        worker: str,
        state: JobState,
        exit_code: int | None,
        error: JobError | None,
        outputs: list[OutputFile],
        logs: dict[str, str],
    ) -> Job | None:
        """Record the end of a run held by ``worker``; None if the job is not RUNNING on it."""
        if not state.terminal:
            raise ValueError(f"{state} is not a terminal state")
        return await self._transition(
            {"_id": job_id, "state": JobState.RUNNING.value, "worker": worker},
            {
                "state": state.value,
                "finished": utcnow(),
                "exit_code": exit_code,
                "error": None if error is None else error.model_dump(),
                "outputs": [o.model_dump() for o in outputs],
                "logs": logs,
            },
        )

    async def keep_logs_of_ended(self, job_id: str, *, worker: str, logs: dict[str, str]) -> Job | None:
        """Attach the logs of a run whose job was forced to an end meanwhile; None unless it is ended and unpackaged."""
        ended = [state.value for state in JobState if state.terminal]
        return await self._transition(
            {"_id": job_id, "worker": worker, "state": {"$in": ended}, "archive": None}, {"logs": logs}
        )

    async def set_archive(self, job_id: str, archive: Archive, *, finished: datetime | None) -> Job | None:
        """Attach the archive of the run that ended at ``finished``, unless one is attached already.

        None if one was, or if the job was run again since (retried): that archive is of an old run.
        """
        return await self._transition(
            {"_id": job_id, "archive": None, "finished": finished, "expired": None, "expiry_lease": None},
            {"archive": archive.model_dump()},
        )

    async def set_progress(self, job_id: str, progress: JobProgress) -> None:
        """Record the app's latest progress report on its job."""
        with _translated(f"job {job_id}"):
            await self._jobs.update_one({"_id": job_id}, {"$set": {"progress": progress.model_dump()}})

    async def force_state(self, job: Job, change: StateChange) -> Job | None:
        """Set the state of ``job`` to ``change.to`` and append the change to its history.

        None if the job is no longer in ``change.from_`` (something else moved it meanwhile).
        A forced end also stamps ``finished`` (if unset) and, for a RUNNING job, ``cancel_requested``,
        so its runner stops the app rather than running on for a job that is over.
        """
        changes: Document = {"state": change.to.value}
        if change.to.terminal and job.finished is None:
            changes["finished"] = change.at
        if change.to.terminal and change.from_ is JobState.RUNNING and job.cancel_requested is None:
            changes["cancel_requested"] = change.at
        entry = change.model_dump(mode="python", by_alias=True)
        entry["from"], entry["to"] = change.from_.value, change.to.value
        return await self._transition({"_id": job.id, "state": change.from_.value}, changes, push={"history": entry})

    async def _transition(self, match: Document, changes: Document, *, push: Document | None = None) -> Job | None:
        update: Document = {"$set": changes} | ({"$push": push} if push else {})
        with _translated(f"job {match['_id']}"):
            doc = await _update_and_read(self._jobs, match, update)
        return None if doc is None else _from_doc(Job, doc)

    # Workers and cluster counts

    async def heartbeat(self, worker: WorkerInfo) -> None:
        """Record (or refresh) a worker's presence."""
        doc = _to_doc(worker)
        with _translated(f"worker {worker.id}"):
            await self._workers.replace_one({"_id": doc["_id"]}, doc, upsert=True)

    async def remove_worker(self, worker_id: str) -> None:
        """Forget a worker that stopped cleanly."""
        with _translated(f"worker {worker_id}"):
            await self._workers.delete_one({"_id": worker_id})

    async def list_workers(self) -> list[WorkerInfo]:
        """Every registered worker, by service and id."""
        with _translated("list workers"):
            docs = await self._workers.find({}).sort([("service", ASCENDING), ("_id", ASCENDING)]).to_list(None)
        return [_from_doc(WorkerInfo, doc) for doc in docs]

    async def count_active_jobs(self, *, owner: str | None) -> list[Document]:
        """QUEUED and RUNNING jobs counted per owner, queue, app and state: ``[{owner, queue, app, state, n}]``."""
        match = {"state": {"$in": [JobState.QUEUED.value, JobState.RUNNING.value]}, **_mine(owner)}
        key = {"owner": "$owner", "queue": "$queue", "app": "$app", "state": "$state"}
        pipeline = [{"$match": match}, {"$group": {"_id": key, "n": {"$sum": 1}}}]
        with _translated("count jobs"):
            return [row["_id"] | {"n": row["n"]} async for row in await self._jobs.aggregate(pipeline)]

    # Cancel

    async def cancel_queued(self, job_id: str, *, owner: str | None, reason: str) -> Job | None:
        """QUEUED -> CANCELED at once; None if the job is not (or no longer) QUEUED."""
        return await self._transition(
            {"_id": job_id, "state": JobState.QUEUED.value, **_mine(owner)},
            {"state": JobState.CANCELED.value, "finished": utcnow(), "error": {"reason": reason, "stderr_tail": ""}},
        )

    async def request_cancel(self, job_id: str, *, owner: str | None) -> Job | None:
        """Flag a RUNNING job for its runner to stop; None if it is not RUNNING."""
        return await self._transition(
            {"_id": job_id, "state": JobState.RUNNING.value, **_mine(owner)}, {"cancel_requested": utcnow()}
        )

    async def cancel_requests(self, job_ids: list[str], *, worker: str) -> list[str]:
        """Which of these jobs ``worker`` runs should stop: asked to, or no longer RUNNING on it (recovered, forced)."""
        fields = {"cancel_requested": 1, "state": 1, "worker": 1}
        with _translated("find cancel requests"):
            docs = await self._jobs.find({"_id": {"$in": job_ids}}, fields).to_list(None)
        # Judged here rather than in an $or: see the module docstring.
        return [
            doc["_id"]
            for doc in docs
            if doc.get("cancel_requested") is not None
            or doc.get("state") != JobState.RUNNING.value
            or doc.get("worker") != worker
        ]

    # Events

    async def insert_events(self, events: list[Event]) -> None:
        """Record what happened to jobs, in order."""
        if events:
            with _translated("insert events"):
                await self._events.insert_many([_to_doc(event) for event in events], ordered=True)

    async def record_events(self, events: list[Event]) -> None:
        """Record events of changes already made, at best effort: ones lost to an outage are logged, never raised."""
        try:
            await self.insert_events(events)
        except AppError as exc:
            for event in events:
                log.warning("job_event_lost", job_id=event.job_id, type=event.type, detail=exc.detail)

    async def events_after(
        self,
        after: str | None,
        *,
        before: str | None = None,
        job_id: str | None = None,
        owner: str | None = None,
        limit: int = 500,
    ) -> list[Event]:
        """Up to ``limit`` events between the ids ``after`` and ``before``, oldest first: one job's, or ``owner``'s."""
        match: Document = _mine(owner) | ({} if job_id is None else {"job_id": job_id})
        bounds = ({} if after is None else {"$gt": after}) | ({} if before is None else {"$lt": before})
        if bounds:
            match["_id"] = bounds
        with _translated("list events"):
            docs = await self._events.find(match).sort("_id", ASCENDING).limit(limit).to_list(None)
        return [_from_doc(Event, doc) for doc in docs]

    # Idempotency keys

    @staticmethod
    def _key_id(owner: str, key: str) -> str:
        return hashlib.sha256(f"{owner}\0{key}".encode()).hexdigest()

    async def reserve_idempotency_key(self, *, owner: str, key: str, fingerprint: str, job_id: str) -> Document | None:
        """Reserve ``key`` for ``owner``: None if this call got it, else the earlier reservation."""
        doc = {
            "_id": self._key_id(owner, key),
            "owner": owner,
            "fingerprint": fingerprint,
            "job_id": job_id,
            "created": utcnow(),
        }
        try:
            with _translated("idempotency key"):
                await self._idempotency.insert_one(doc)
            return None
        except Duplicate:
            with _translated("idempotency key"):
                held: Document | None = await self._idempotency.find_one({"_id": doc["_id"]})
            return (
                held
                if held is not None
                else await self.reserve_idempotency_key(owner=owner, key=key, fingerprint=fingerprint, job_id=job_id)
            )

    async def release_idempotency_key(self, *, owner: str, key: str) -> None:
        """Forget a reservation whose submission failed."""
        with _translated("idempotency key"):
            await self._idempotency.delete_one({"_id": self._key_id(owner, key)})

    # Queues

    async def ensure_queue(self, queue: Queue) -> Queue:
        """The owner's queue of that name, created as ``queue`` if it does not exist yet."""
        doc, match = _to_doc(queue), {"owner": queue.owner, "name": queue.name}
        try:
            with _translated(f"queue {queue.name}"):
                found = await self._queues.find_one_and_update(
                    match, {"$setOnInsert": doc}, upsert=True, return_document=ReturnDocument.AFTER
                )
        except Duplicate:  # a concurrent upsert created it first
            with _translated(f"queue {queue.name}"):
                found = await self._queues.find_one(match)
        if found is None:
            raise NotFound(f"no queue {queue.name!r}")
        return _from_doc(Queue, found)

    async def insert_queue(self, queue: Queue) -> None:
        """Record a new queue; Conflict if the owner has one of that name."""
        with _translated(f"queue {queue.name!r}"):
            await self._queues.insert_one(_to_doc(queue))

    async def get_queue(self, queue_id: str, *, owner: str | None = None) -> Queue:
        """One queue (of ``owner``, unless None), or NotFound."""
        with _translated(f"queue {queue_id}"):
            doc = await self._queues.find_one({"_id": queue_id, **_mine(owner)})
        if doc is None:
            raise NotFound(f"no queue {queue_id}")
        return _from_doc(Queue, doc)

    async def find_queue(self, *, owner: str, name: str) -> Queue | None:
        """The owner's queue called ``name``, if any."""
        with _translated(f"queue {name!r}"):
            doc = await self._queues.find_one({"owner": owner, "name": name})
        return None if doc is None else _from_doc(Queue, doc)

    async def list_queues(self, *, owner: str | None, limit: int, after: str | None) -> Page[Queue]:
        """Queues, newest first."""
        return await self._page(self._queues, Queue, _mine(owner), limit=limit, after=after)

    async def set_queue_paused(self, queue_id: str, *, owner: str | None, paused: bool) -> Queue:
        """Pause or resume a queue; NotFound if it is not the owner's."""
        with _translated(f"queue {queue_id}"):
            doc = await _update_and_read(
                self._queues, {"_id": queue_id, **_mine(owner)}, {"$set": {"paused": paused, "updated": utcnow()}}
            )
        if doc is None:
            raise NotFound(f"no queue {queue_id}")
        return _from_doc(Queue, doc)

    async def delete_queue(self, queue_id: str) -> None:
        """Forget a queue (its jobs are the caller's business)."""
        with _translated(f"queue {queue_id}"):
            await self._queues.delete_one({"_id": queue_id})

    async def queue_counts(self, queues: list[Queue]) -> dict[str, dict[str, int]]:
        """Jobs per state in each of ``queues``: {queue id: {state: count}}."""
        if not queues:
            return {}
        by_key = {(q.owner, q.name): q.id for q in queues}
        # Owners and names separately, not an $or of pairs (see the module docstring); other pairs are dropped below.
        owners, names = sorted({q.owner for q in queues}), sorted({q.name for q in queues})
        match = {"owner": {"$in": owners}, "queue": {"$in": names}}
        group = {"_id": {"owner": "$owner", "queue": "$queue", "state": "$state"}, "n": {"$sum": 1}}
        counts: dict[str, dict[str, int]] = {q.id: {} for q in queues}
        with _translated("count queue jobs"):
            async for row in await self._jobs.aggregate([{"$match": match}, {"$group": group}]):
                queue_id = by_key.get((row["_id"]["owner"], row["_id"]["queue"]))
                if queue_id is not None:
                    counts[queue_id][row["_id"]["state"]] = row["n"]
        return counts

    async def queue_job_ids(self, queue: Queue, *, states: list[JobState] | None = None) -> list[str]:
        """Ids of the jobs in ``queue`` (in any of ``states``), oldest first."""
        match: Document = {"owner": queue.owner, "queue": queue.name}
        if states is not None:
            match["state"] = {"$in": [state.value for state in states]}
        with _translated(f"jobs of queue {queue.id}"):
            docs = await self._jobs.find(match, {"_id": 1}).sort("_id", ASCENDING).to_list(None)
        return [doc["_id"] for doc in docs]

    async def requeue_job(self, job: Job, change: StateChange, *, attempt: int = 1) -> Job | None:
        """Put a finished (retry) or orphaned RUNNING (recover) job back to QUEUED as if new, recording why.

        None if the job moved meanwhile. Its dependencies are waited on again; its last run's outcome is cleared.
        ``attempt`` is the number of the run to come (a recovery counts on; a retry starts over).
        """
        match: Document = {"_id": job.id, "state": change.from_.value}
        if change.from_ is JobState.RUNNING:
            match["worker"] = job.worker
        reset: Document = {
            "state": JobState.QUEUED.value,
            "started": None,
            "finished": None,
            "worker": None,
            "exit_code": None,
            "error": None,
            "cancel_requested": None,
            "outputs": [],
            "logs": {},
            "archive": None,
            "selections": {},
            "progress": None,
            "dispatched": None,
            "dispatch_lease": None,
            "waiting_on": job.depends_on,
            "attempt": attempt,
            "expires": None,
            "expired": None,
            "expiry_lease": None,
            "packaging_resent": None,
        }
        entry = change.model_dump(mode="python", by_alias=True)
        entry["from"], entry["to"] = change.from_.value, change.to.value
        return await self._transition(match, reset, push={"history": entry})

    # Dispatch: QUEUED jobs wait here until they may start; the dispatcher sends them to RabbitMQ

    async def insert_batch(self, batch: Batch, jobs: list[Job]) -> None:
        """Record a batch (uncommitted) and its jobs; the dispatcher ignores them until it is committed."""
        with _translated(f"batch {batch.id}"):
            await self._batches.insert_one(_to_doc(batch))
            for start in range(0, len(jobs), 1000):
                await self._jobs.insert_many([_to_doc(job) for job in jobs[start : start + 1000]], ordered=True)

    async def commit_batch(self, batch_id: str) -> None:
        """Let the dispatcher see a batch that is fully stored; Unavailable if it was swept away as abandoned."""
        with _translated(f"batch {batch_id}"):
            result = await self._batches.update_one(
                {"_id": batch_id, "committed": False}, {"$set": {"committed": True}}
            )
        if not result.modified_count:
            raise Unavailable(f"batch {batch_id} took too long to store and was discarded")

    async def delete_batch(self, batch_id: str) -> None:
        """Forget an uncommitted batch with its jobs (storing it failed, or was abandoned); a committed one stays.

        The record goes first, so a commit racing with this fails rather than release half a batch.
        """
        with _translated(f"batch {batch_id}"):
            result = await self._batches.delete_one({"_id": batch_id, "committed": False})
            if result.deleted_count:
                await self._jobs.delete_many({"batch": batch_id})

    async def uncommitted_batches(self, *, created_before: datetime | None = None) -> list[str]:
        """Ids of batches still being stored (or, with ``created_before``, abandoned while being stored)."""
        match: Document = {"committed": False}
        if created_before is not None:
            match["created"] = {"$lt": created_before}
        with _translated("batches"):
            docs = await self._batches.find(match, {"_id": 1}).to_list(None)
        return [doc["_id"] for doc in docs]

    async def batch_jobs(self, batch_id: str, *, owner: str) -> list[Job]:
        """The jobs of a committed batch, in submission order; NotFound while it is still being stored."""
        with _translated(f"batch {batch_id}"):
            batch = await self._batches.find_one({"_id": batch_id, "owner": owner, "committed": True})
            docs = (
                [] if batch is None else await self._jobs.find({"batch": batch_id}).sort("_id", ASCENDING).to_list(None)
            )
        if batch is None:
            raise NotFound(f"no batch {batch_id}")
        return [_from_doc(Job, doc) for doc in docs]

    async def delete_jobs(self, job_ids: list[str]) -> None:
        """Forget these jobs (their S3 objects are the caller's business); one call per job, as $in is slow here."""
        for job_id in job_ids:
            await self.delete_job(job_id)

    async def delete_unstarted_jobs(self, *, owner: str, queue: str) -> int:
        """Forget the queue's jobs that never started (QUEUED, or ended before starting): they left nothing in S3."""
        with _translated(f"jobs of queue {queue!r}"):
            result = await self._jobs.delete_many({"owner": owner, "queue": queue, "started": None})
        return int(result.deleted_count)

    async def paused_queues(self) -> list[tuple[str, str]]:
        """(owner, name) of every paused queue."""
        with _translated("paused queues"):
            docs = await self._queues.find({"paused": True}, {"owner": 1, "name": 1}).to_list(None)
        return [(doc["owner"], doc["name"]) for doc in docs]

    async def queue_paused(self, *, owner: str, name: str) -> bool:
        """Whether the owner's queue of that name is paused."""
        with _translated(f"queue {name!r}"):
            return await self._queues.find_one({"owner": owner, "name": name, "paused": True}, {"_id": 1}) is not None

    async def in_flight(self, *, live_workers: list[str]) -> dict[str, int]:
        """Per owner, jobs RUNNING on a live worker, or sent to RabbitMQ and not started yet."""
        running = {"state": JobState.RUNNING.value, "worker": {"$in": live_workers}}
        sent = {"state": JobState.QUEUED.value, "dispatched": {"$ne": None}}
        counts: dict[str, int] = {}
        with _translated("count jobs in flight"):
            for match in (running, sent):
                async for row in await self._jobs.aggregate(
                    [{"$match": match}, {"$group": {"_id": "$owner", "n": {"$sum": 1}}}]
                ):
                    counts[row["_id"]] = counts.get(row["_id"], 0) + row["n"]
        return counts

    async def dispatch_candidates(
        self, *, limit: int, skip_owners: list[str], paused: list[tuple[str, str]], storing: list[str]
    ) -> list[Job]:
        """QUEUED jobs that may start: not sent yet, waiting on nothing, not in a paused queue or unstored batch.

        Highest priority first, then oldest; jobs a dispatcher is already sending are left to it.
        Jobs of paused queues are passed over here rather than in the query (an ``$nor`` of pairs,
        see the module docstring); pausing is rare, and only a paused queue's own jobs are read past.
        """
        match: Document = {
            "state": JobState.QUEUED.value,
            "dispatched": None,
            "waiting_on": {"$size": 0},
            "dispatch_lease": _unset_or_before(utcnow()),
        }
        if skip_owners:
            match["owner"] = {"$nin": skip_owners}
        if storing:
            match["batch"] = {"$nin": storing}
        held = set(paused)
        found: list[Job] = []
        with _translated("dispatch candidates"):
            cursor = self._jobs.find(match).sort([("priority", DESCENDING), ("_id", ASCENDING)])
            if not held:
                cursor = cursor.limit(limit)
            async for doc in cursor.batch_size(min(limit, 1000)):
                if (doc["owner"], doc.get("queue")) in held:
                    continue
                found.append(_from_doc(Job, doc))
                if len(found) >= limit:
                    break
            await cursor.close()
        return found

    async def lease_dispatches(self, job_ids: list[str], *, until: datetime) -> list[str]:
        """Take the right to send these jobs until ``until``; returns those taken, the others being sent, started
        or leased meanwhile. ``until`` tells this caller's leases from another's, so it should be unique to the call.
        """
        if not job_ids:
            return []
        match = {"state": JobState.QUEUED.value, "dispatched": None, "dispatch_lease": _unset_or_before(utcnow())}
        with _translated(f"lease {len(job_ids)} jobs"):
            changed = await _update_by_ids(self._jobs, job_ids, match, {"$set": {"dispatch_lease": until}})
            if changed in (0, len(job_ids)):  # none or all: no need to read which
                return list(job_ids) if changed else []
            ours = {"_id": {"$in": job_ids}, "dispatch_lease": until}
            taken = {doc["_id"] for doc in await self._jobs.find(ours, {"_id": 1}).to_list(None)}
        return [job_id for job_id in job_ids if job_id in taken]

    async def mark_dispatched(self, job_ids: list[str], *, lease: datetime) -> None:
        """Record that these jobs' messages are in RabbitMQ, for each still as this dispatcher leased it.

        A runner may have started one already (the claim keeps the lease), or handed it back (the
        lease is cleared): then there is nothing to mark. The lease stays: it is what the claim looks for.
        """
        with _translated(f"{len(job_ids)} dispatched jobs"):
            await _update_by_ids(self._jobs, job_ids, {"dispatch_lease": lease}, {"$set": {"dispatched": utcnow()}})

    async def undispatch(self, job_id: str) -> bool:
        """Take a QUEUED job back from RabbitMQ (its lease too), so it is dispatched again later."""
        with _translated(f"job {job_id}"):
            result = await self._jobs.update_one(
                {"_id": job_id, "state": JobState.QUEUED.value},
                {"$set": {"dispatched": None, "dispatch_lease": None}},
            )
        return bool(result.modified_count)

    async def orphaned_jobs(self, *, live_workers: list[str], started_before: datetime) -> list[Job]:
        """RUNNING jobs whose worker is not among the live ones (and that did not start just now)."""
        match = {"state": JobState.RUNNING.value, "worker": {"$nin": live_workers}, "started": {"$lt": started_before}}
        with _translated("orphaned jobs"):
            docs = await self._jobs.find(match).to_list(None)
        return [_from_doc(Job, doc) for doc in docs]

    async def fail_orphan(self, job: Job, *, reason: str) -> Job | None:
        """RUNNING on a dead worker -> FAILED with ``reason``; None if it moved meanwhile."""
        return await self._transition(
            {"_id": job.id, "state": JobState.RUNNING.value, "worker": job.worker},
            {"state": JobState.FAILED.value, "finished": utcnow(), "error": {"reason": reason, "stderr_tail": ""}},
        )

    async def undispatch_stale(self, *, dispatched_before: datetime) -> int:
        """Take back QUEUED jobs sent before then and never claimed: their messages were lost (dead-lettered)."""
        with _translated("stale dispatches"):
            result = await self._jobs.update_many(
                {"state": JobState.QUEUED.value, "dispatched": {"$lt": dispatched_before}},
                {"$set": {"dispatched": None, "dispatch_lease": None}},
            )
        return int(result.modified_count)

    async def waited_on(self) -> list[str]:
        """Ids that QUEUED jobs are still waiting on."""
        with _translated("dependencies"):
            ids = await self._jobs.distinct("waiting_on", {"state": JobState.QUEUED.value, "waiting_on": {"$ne": []}})
        return sorted(str(i) for i in ids)

    async def job_states(self, job_ids: list[str], *, owner: str | None = None) -> dict[str, JobState]:
        """The state of each of these jobs (of ``owner``, unless None) that still exists."""
        states: dict[str, JobState] = {}
        with _translated("job states"):
            for start in range(0, len(job_ids), 1000):
                chunk = job_ids[start : start + 1000]
                docs = await self._jobs.find({"_id": {"$in": chunk}, **_mine(owner)}, {"state": 1}).to_list(None)
                states |= {doc["_id"]: JobState(doc["state"]) for doc in docs}
        return states

    async def stop_waiting(self, job_ids: list[str]) -> None:
        """These jobs succeeded: nobody waits on them any more."""
        with _translated("dependencies"):
            await self._jobs.update_many(
                {"state": JobState.QUEUED.value, "waiting_on": {"$in": job_ids}},
                {"$pull": {"waiting_on": {"$in": job_ids}}},
            )

    async def jobs_waiting_on(self, job_ids: list[str]) -> list[Job]:
        """QUEUED jobs waiting on any of these."""
        with _translated("dependencies"):
            docs = await self._jobs.find({"state": JobState.QUEUED.value, "waiting_on": {"$in": job_ids}}).to_list(None)
        return [_from_doc(Job, doc) for doc in docs]

    async def fail_queued(self, job_id: str, *, reason: str) -> Job | None:
        """QUEUED -> FAILED before it ran (a dependency failed); None if it is no longer QUEUED."""
        return await self._transition(
            {"_id": job_id, "state": JobState.QUEUED.value},
            {"state": JobState.FAILED.value, "finished": utcnow(), "error": {"reason": reason, "stderr_tail": ""}},
        )

    # Selective archives: ``selections.<digest>`` on a job, asked for by the gateway, filled by the results worker

    async def request_selection(self, job: Job, digest: str, selection: Selection, *, resend_before: datetime) -> bool:
        """Record that ``selection`` is wanted; True if this caller won the right to enqueue its packaging.

        False if it is packaged already, or was asked for after ``resend_before`` (a packager is on it),
        or the job ran again since ``job`` was read.
        """
        field = f"selections.{digest}"
        # Not asked for yet (no archive, no request), or asked for before ``resend_before`` and still unpackaged.
        match: Document = {
            "_id": job.id,
            "finished": job.finished,
            f"{field}.archive": None,
            f"{field}.requested": _unset_or_before(resend_before),
        }
        return await self._transition(match, {field: selection.model_dump()}) is not None

    async def release_selection(self, job_id: str, digest: str, *, requested: datetime) -> None:
        """Forget a request whose packaging could not be enqueued, so the next caller tries again."""
        field = f"selections.{digest}"
        with _translated(f"job {job_id}"):
            await self._jobs.update_one(
                {"_id": job_id, f"{field}.requested": requested, f"{field}.archive": None}, {"$unset": {field: ""}}
            )

    async def set_selection_archive(
        self, job_id: str, digest: str, archive: Archive, *, finished: datetime | None
    ) -> Job | None:
        """Attach a selection's archive unless one is, or the job ran again since ``finished``, or it expired."""
        field = f"selections.{digest}"
        return await self._transition(
            {
                "_id": job_id,
                "finished": finished,
                "expired": None,
                "expiry_lease": None,
                f"{field}.requested": {"$exists": True},
                f"{field}.archive": None,
            },
            {f"{field}.archive": archive.model_dump()},
        )

    # Retention: ended jobs whose time is up lose their S3 objects; the sweeper claims each before deleting

    async def stamp_expiry(self, *, limit: int) -> int:
        """Set ``expires`` (its end plus its retention) on up to ``limit`` ended jobs that have none yet."""
        match = {
            "expired": None,
            "expires": None,
            "finished": {"$ne": None},
            "retention_seconds": {"$ne": None},
        }
        stamped = 0
        with _translated("stamp expiry"):
            docs = await self._jobs.find(match, {"finished": 1, "retention_seconds": 1}).limit(limit).to_list(None)
            for doc in docs:
                expires = doc["finished"] + timedelta(seconds=doc["retention_seconds"])
                result = await self._jobs.update_one(
                    {"_id": doc["_id"], "finished": doc["finished"], "expires": None}, {"$set": {"expires": expires}}
                )
                stamped += result.modified_count
        return stamped

    async def due_for_expiry(self, *, now: datetime, packaged_by: datetime, limit: int) -> list[str]:
        """Ids of up to ``limit`` jobs whose ``expires`` is past and that nothing will write to any more.

        A job that ran is taken once it is packaged, or once it ended before ``packaged_by`` (its
        packaging is then lost or done for): deleting earlier would race with the packager.
        """
        due = {"expired": None, "expires": {"$lt": now}}
        # Three queries rather than an $or (see the module docstring), merged by when each expired.
        ways = ({"archive": {"$ne": None}}, {"started": None}, {"finished": {"$lt": packaged_by}})
        found: dict[str, datetime] = {}
        with _translated("jobs due for expiry"):
            for way in ways:
                cursor = self._jobs.find(due | way, {"expires": 1}).sort("expires", ASCENDING).limit(limit)
                found |= {doc["_id"]: doc["expires"] for doc in await cursor.to_list(None)}
        return sorted(found, key=lambda job_id: (found[job_id], job_id))[:limit]

    async def claim_expiry(self, job_id: str, *, until: datetime) -> Job | None:
        """Take the right to delete an expired job's objects until ``until``; None if another sweeper holds it."""
        now = utcnow()
        return await self._transition(
            {
                "_id": job_id,
                "expired": None,
                "expires": {"$lt": now},
                "expiry_lease": _unset_or_before(now),
            },
            {"expiry_lease": until},
        )

    async def mark_expired(self, job_id: str, *, lease: datetime) -> Job | None:
        """Record that the job's objects are deleted; None if this sweeper's lease was lost meanwhile."""
        return await self._transition(
            {"_id": job_id, "expiry_lease": lease, "expired": None}, {"expired": utcnow(), "expiry_lease": None}
        )

    async def unpackaged_jobs(self, *, finished_before: datetime, resent_before: datetime, limit: int) -> list[str]:
        """Ids of jobs that ran and ended before then without an archive, not asked again since ``resent_before``."""
        match = {
            "expired": None,
            "finished": {"$lt": finished_before},
            "started": {"$ne": None},
            "archive": None,
            "packaging_resent": _unset_or_before(resent_before),
        }
        with _translated("unpackaged jobs"):
            docs = await self._jobs.find(match, {"_id": 1}).sort("finished", ASCENDING).limit(limit).to_list(None)
        return [doc["_id"] for doc in docs]

    async def claim_packaging_resend(self, job_id: str, *, resent_before: datetime) -> bool:
        """Take the right to ask for this job's packaging again; False if another sweeper did since then."""
        match = {
            "_id": job_id,
            "archive": None,
            "expired": None,
            "packaging_resent": _unset_or_before(resent_before),
        }
        with _translated(f"job {job_id}"):
            result = await self._jobs.update_one(match, {"$set": {"packaging_resent": utcnow()}})
        return bool(result.modified_count)

    async def release_packaging_resend(self, job_id: str) -> None:
        """Forget a claim whose message could not be sent, so the next pass asks again."""
        with _translated(f"job {job_id}"):
            await self._jobs.update_one({"_id": job_id, "archive": None}, {"$set": {"packaging_resent": None}})

    # Webhooks: registered URLs, each user's signing secret, and every delivery with its attempts

    async def insert_webhook(self, webhook: Webhook) -> None:
        """Record a registered webhook."""
        with _translated(f"webhook {webhook.id}"):
            await self._webhooks.insert_one(_to_doc(webhook))

    async def get_webhook(self, webhook_id: str, *, owner: str | None = None) -> Webhook:
        """One registered webhook (of ``owner``, unless None), or NotFound."""
        with _translated(f"webhook {webhook_id}"):
            doc = await self._webhooks.find_one({"_id": webhook_id, **_mine(owner)})
        if doc is None:
            raise NotFound(f"no webhook {webhook_id}")
        return _from_doc(Webhook, doc)

    async def list_webhooks(self, *, owner: str | None, limit: int, after: str | None) -> Page[Webhook]:
        """Registered webhooks, newest first."""
        return await self._page(self._webhooks, Webhook, _mine(owner), limit=limit, after=after)

    async def owner_webhooks(self, owner: str) -> list[Webhook]:
        """Every webhook ``owner`` registered, oldest first."""
        with _translated(f"webhooks of {owner}"):
            docs = await self._webhooks.find({"owner": owner}).sort("_id", ASCENDING).to_list(None)
        return [_from_doc(Webhook, doc) for doc in docs]

    async def delete_webhook(self, webhook_id: str) -> None:
        """Forget a registered webhook (its deliveries are kept)."""
        with _translated(f"webhook {webhook_id}"):
            await self._webhooks.delete_one({"_id": webhook_id})

    async def set_webhook_secret(self, secret: WebhookSecret) -> None:
        """Store (or replace) a user's signing secret."""
        doc = _to_doc(secret)
        with _translated(f"webhook secret of {secret.id}"):
            await self._webhook_secrets.replace_one({"_id": doc["_id"]}, doc, upsert=True)

    async def get_webhook_secret(self, owner: str) -> WebhookSecret | None:
        """A user's signing secret, or None if they have not made one."""
        with _translated(f"webhook secret of {owner}"):
            doc = await self._webhook_secrets.find_one({"_id": owner})
        return None if doc is None else _from_doc(WebhookSecret, doc)

    async def add_delivery(self, delivery: Delivery) -> Delivery:
        """Record a delivery unless one of that id exists; either way, the stored one."""
        doc = _to_doc(delivery)
        with _translated(f"delivery {delivery.id}"):
            await self._deliveries.update_one({"_id": doc["_id"]}, {"$setOnInsert": doc}, upsert=True)
        return await self.get_delivery(delivery.id)

    async def get_delivery(self, delivery_id: str, *, owner: str | None = None) -> Delivery:
        """One delivery (of ``owner``, unless None), or NotFound."""
        with _translated(f"delivery {delivery_id}"):
            doc = await self._deliveries.find_one({"_id": delivery_id, **_mine(owner)})
        if doc is None:
            raise NotFound(f"no delivery {delivery_id}")
        return _from_doc(Delivery, doc)

    async def job_deliveries(self, job_id: str) -> list[Delivery]:
        """A job's deliveries, oldest first."""
        with _translated(f"deliveries of {job_id}"):
            docs = await self._deliveries.find({"job_id": job_id}).sort("_id", ASCENDING).to_list(None)
        return [_from_doc(Delivery, doc) for doc in docs]

    async def lease_delivery(self, delivery_id: str, *, now: datetime, until: datetime) -> Delivery | None:
        """Take a pending delivery for one attempt until ``until``; None if it is done or another worker holds it."""
        with _translated(f"delivery {delivery_id}"):
            doc = await _update_and_read(
                self._deliveries,
                {"_id": delivery_id, "state": DeliveryState.PENDING.value, "lease": _unset_or_before(now)},
                {"$set": {"lease": until}},
            )
        return None if doc is None else _from_doc(Delivery, doc)

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
        with _translated(f"delivery {delivery_id}"):
            doc = await _update_and_read(
                self._deliveries,
                {"_id": delivery_id, "state": DeliveryState.PENDING.value, "lease": lease},
                {
                    "$push": {"attempts": attempt.model_dump()},
                    "$set": {"state": state.value, "lease": None, "next_attempt": next_attempt},
                },
            )
        return None if doc is None else _from_doc(Delivery, doc)
