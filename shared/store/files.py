"""Input files: uploaded ones, and presigned uploads pending until their bytes are checked."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from pymongo import ASCENDING, DESCENDING

from shared.errors import NotFound
from shared.models import PendingUpload, StoredFile, utcnow
from shared.store.database import (
    Database,
    Document,
    Page,
    from_document,
    named_and_created,
    owner_filter,
    read_one,
    read_page,
    to_document,
    translated,
    unset_or_before,
    update_and_read,
)
from shared.store.usage import USAGE, add_stored_bytes


@dataclass(frozen=True)
class FileFilter:
    """Which files a list shows: all of them unless narrowed."""

    name_prefix: str | None = None
    content_type: str | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None


def _matching(where: FileFilter) -> Document:
    query = named_and_created(where.name_prefix, where.created_after, where.created_before)
    if where.content_type is not None:
        query["content_type"] = where.content_type
    return query


class FileStore:
    """Uploaded files and pending uploads."""

    def __init__(self, database: Database) -> None:
        self._files = database.collection("files")
        self._uploads = database.collection("uploads")
        self._usage = database.collection(USAGE)  # the owner's stored bytes, moved with each file

    async def ensure_indexes(self) -> None:
        """Create the indexes the queries below rely on (idempotent)."""
        with translated("create indexes"):
            await self._files.create_index([("owner", ASCENDING), ("_id", DESCENDING)])
            await self._uploads.create_index("expires")
            await self._uploads.create_index("owner")  # the pending uploads quota's count

    async def insert_file(self, file: StoredFile) -> None:
        """Record an uploaded file, and count its bytes as its owner's."""
        with translated(f"file {file.id}"):
            await self._files.insert_one(to_document(file))
        await add_stored_bytes(self._usage, file.owner, file.size)

    async def get_files(self, ids: list[str], *, owner: str | None = None) -> dict[str, StoredFile]:
        """The files among ``ids`` that exist (and belong to ``owner``, unless None), by id."""
        with translated("find files"):
            docs = await self._files.find({"_id": {"$in": ids}, **owner_filter(owner)}).to_list(None)
        return {doc["_id"]: from_document(StoredFile, doc) for doc in docs}

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
        match = owner_filter(owner) | _matching(where or FileFilter())
        return await read_page(self._files, StoredFile, match, limit=limit, after=after)

    async def delete_file(self, file: StoredFile) -> None:
        """Forget a file (its S3 object is the caller's business), and its bytes if this call forgot it."""
        with translated(f"file {file.id}"):
            result = await self._files.delete_one({"_id": file.id})
        if result.deleted_count:
            await add_stored_bytes(self._usage, file.owner, -file.size)

    async def insert_upload(self, upload: PendingUpload) -> None:
        """Record an announced upload."""
        with translated(f"upload {upload.id}"):
            await self._uploads.insert_one(to_document(upload))

    async def count_uploads(self, owner: str, *, limit: int = 0) -> int:
        """How many uploads ``owner`` has pending, counting no further than ``limit`` (0: all)."""
        with translated("count uploads"):
            return (
                await self._uploads.count_documents({"owner": owner}, limit=limit)
                if limit
                else await self._uploads.count_documents({"owner": owner})
            )

    async def get_upload(self, upload_id: str, *, owner: str | None = None) -> PendingUpload:
        """One pending upload (of ``owner``, unless None), or NotFound."""
        match = {"_id": upload_id, **owner_filter(owner)}
        what, missing = f"upload {upload_id}", f"no pending upload {upload_id}"
        return await read_one(self._uploads, PendingUpload, match, what=what, missing=missing)

    async def claim_upload(self, upload_id: str, *, owner: str | None, stale_before: datetime) -> PendingUpload | None:
        """Mark an upload as being completed; None if another request holds it (since ``stale_before``)."""
        match = {"_id": upload_id, **owner_filter(owner), "completing": unset_or_before(stale_before)}
        with translated(f"upload {upload_id}"):
            doc = await update_and_read(self._uploads, match, {"$set": {"completing": utcnow()}})
        return None if doc is None else from_document(PendingUpload, doc)

    async def expired_uploads(self, *, before: datetime, stale_before: datetime, limit: int) -> list[PendingUpload]:
        """Up to ``limit`` uploads expired before ``before`` that no request began completing since ``stale_before``."""
        match = {"expires": {"$lt": before}, "completing": unset_or_before(stale_before)}
        with translated("expired uploads"):
            docs = await self._uploads.find(match).limit(limit).to_list(None)
        return [from_document(PendingUpload, doc) for doc in docs]

    async def release_upload(self, upload_id: str) -> None:
        """Let another request complete the upload (this one could not)."""
        with translated(f"upload {upload_id}"):
            await self._uploads.update_one({"_id": upload_id}, {"$set": {"completing": None}})

    async def delete_upload(self, upload_id: str) -> None:
        """Forget a pending upload."""
        with translated(f"upload {upload_id}"):
            await self._uploads.delete_one({"_id": upload_id})
